"""Targets of a SAM3 ``Datapoint`` under our transforms: boxes from masks, decoded-mask checks, and
dropping objects that left the frame (queries reindexed by SAM3's own filter machinery).

Boxes stay in SAM3's pre-``NormalizeAPI`` form: absolute pixel-edge XYXY (a mask covering columns
``x0..x1`` has box ``x0, x1 + 1``, as COCO boxes and ``sam3.model.box_ops.masks_to_boxes`` do).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Dict, Iterable, Set, Tuple

import torch
from torchvision.ops import masks_to_boxes

from sam3.train.data.sam3_image_dataset import Datapoint
from sam3.train.transforms.filter_query_transforms import (
    FilterDataPointQueries,
    FlexibleFilterFindGetQueries,
)

log = logging.getLogger(__name__)

# Per-process tallies (each DataLoader worker keeps its own), by the transform that dropped them.
_DROPPED: Counter = Counter()
_DROP_EVENTS: Counter = Counter()


def dropped_object_counts() -> Dict[str, int]:
    """``{transform name: objects dropped so far in this process}``."""
    return dict(_DROPPED)


def reset_dropped_object_counts() -> None:
    _DROPPED.clear()
    _DROP_EVENTS.clear()


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` binary masks -> ``(N, 4)`` float32 pixel-edge XYXY boxes; zeros for an empty mask.

    ``torchvision.ops.masks_to_boxes`` returns the last mask pixel (inclusive: a mask on columns
    ``x0..x1`` gives ``x2 = x1``); a pixel-edge box ends on that pixel's right/bottom edge, so 1 is
    added to ``x2`` and ``y2`` of every non-empty mask. Same result as ``sam3.model.box_ops.masks_to_boxes``
    (tested), without its two full-frame coordinate grids.
    """
    boxes = masks_to_boxes(masks)
    # masks_to_boxes gives (0, 0, 0, 0) for an empty mask and for one whose only pixel is (0, 0)
    nonempty = boxes.ne(0).any(dim=1) | masks[:, 0, 0].ne(0)
    boxes[nonempty, 2:] += 1.0
    return boxes


def box_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` binary mask -> ``(4,)`` float32 pixel-edge XYXY box (:func:`boxes_from_masks`)."""
    return boxes_from_masks(mask[None])[0]


def require_decoded_mask(segment, who: str, hw: Tuple[int, int]) -> None:
    """A geometric transform needs binary mask tensors of the image's size (after ``DecodeRle``)."""
    if segment is None or (isinstance(segment, torch.Tensor) and tuple(segment.shape) == tuple(hw)):
        return
    if isinstance(segment, dict):
        raise TypeError(
            f"{who}: an object's segment is still an RLE dict. Put "
            f"sam3.train.transforms.segmentation.DecodeRle before {who} in the pipeline."
        )
    shape = tuple(segment.shape) if isinstance(segment, torch.Tensor) else type(segment).__name__
    raise TypeError(f"{who}: an object's segment is {shape}, expected a (H, W) = {tuple(hw)} mask tensor")


class _DropListedObjects(FilterDataPointQueries):
    """A SAM3 query filter that removes the listed ``(image index, object index)`` pairs and no query."""

    def __init__(self, obj_ids: Iterable[Tuple[int, int]]) -> None:
        self._ids = set(obj_ids)

    def identify_queries_to_filter(self, datapoint: Datapoint) -> None:
        self.obj_ids_to_filter = set(self._ids)
        self.find_ids_to_filter = set()


def drop_objects(datapoint: Datapoint, obj_ids: Set[Tuple[int, int]], who: str) -> Datapoint:
    """Remove objects and reindex every find query's ``object_ids_output``.

    Uses SAM3's ``FlexibleFilterFindGetQueries`` (the machinery behind ``FilterCrowds`` and
    ``FilterEmptyTargets``), so the result is exactly what SAM3's own filters produce. A query whose
    every object was dropped keeps its text and becomes a negative query (``object_ids_output == []``),
    the form SAM3 already uses for absent categories (``include_negatives``); its inference metadata
    then points at no object (-1), as the loader writes for negatives.
    """
    if not obj_ids:
        return datapoint
    had_targets = [len(q.object_ids_output) > 0 for q in datapoint.find_queries]
    datapoint = FlexibleFilterFindGetQueries(_DropListedObjects(obj_ids))(datapoint)
    for q, had in zip(datapoint.find_queries, had_targets):
        if had and not q.object_ids_output and q.inference_metadata is not None:
            q.inference_metadata.object_id = -1
            q.inference_metadata.frame_index = -1

    n = len(obj_ids)
    _DROPPED[who] += n
    _DROP_EVENTS[who] += 1
    events = _DROP_EVENTS[who]
    if events <= 10 or events % 100 == 0:
        log.info(
            "%s: dropped %d object(s) pushed out of the frame (%d so far in this process)",
            who, n, _DROPPED[who],
        )
    return datapoint
