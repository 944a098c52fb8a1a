"""SAM3's COCO dataset and collate, carrying each frame's C-arm view angles to the batch.

One sample: COCO image record (``view_angles: {primary, secondary}`` in degrees or null) -> SAM3
``Datapoint`` + ``datapoint.view_angles`` (2,) float, ``datapoint.view_known`` bool -> collate ->
``AngioBatchedDatapoint`` with ``view_angles`` (B_img, 2) and ``view_known`` (B_img,).
Angles: primary LAO+ / RAO-, secondary CRA+ / CAU- (DICOM PositionerPrimary/SecondaryAngle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional

import torch
from sam3.model.data_misc import BatchedDatapoint
from sam3.train.data.coco_json_loaders import COCO_FROM_JSON
from sam3.train.data.collator import collate_fn_api
from sam3.train.data.sam3_image_dataset import Sam3ImageDataset

from sam3_angio.errors import DataError
from sam3_angio.registry import DATASETS

UNKNOWN_ANGLES = (0.0, 0.0)  # placeholder values only; `view_known=False` is what says "unknown"


def parse_view_angles(record: Dict[str, Any], where: str) -> Optional[tuple]:
    """``(primary, secondary)`` in degrees from an image record, or None when the record has none.

    Raises DataError naming ``where`` for a malformed or non-finite value.
    """
    va = record.get("view_angles")
    if va is None:
        return None
    try:
        p, s = float(va["primary"]), float(va["secondary"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"{where}: view_angles must be {{'primary': degrees, 'secondary': degrees}} or null, "
            f"found {va!r} ({e})"
        ) from None
    if not (math.isfinite(p) and math.isfinite(s)):
        raise DataError(
            f"{where}: view_angles {va!r} are not finite (NaN/inf); use null for unknown angles"
        )
    return p, s


@DATASETS.register()
class AngioCocoLoader(COCO_FROM_JSON):
    """SAM3's COCO_FROM_JSON (one text query per category per image) that also hands each image's
    view angles and metadata to the dataset.

    ``labels_exhaustive=False`` is for study data where a frame's CSV rows label only some of the
    visible segments: every query is then marked non-exhaustive, and SAM3's ``weak_loss`` drops the
    negative loss there, so an unlabelled but visible segment is not taught as "absent". An image
    record's own ``labels_exhaustive`` key, when present, wins.
    """

    def __init__(self, annotation_file, labels_exhaustive: bool = True, **kwargs):
        super().__init__(annotation_file, **kwargs)
        self.labels_exhaustive = bool(labels_exhaustive)

    def loadQueriesAndAnnotationsFromDatapoint(self, idx):
        queries, annotations = super().loadQueriesAndAnnotationsFromDatapoint(idx)
        record = self._raw_data[idx // len(self.category_chunks)]["image"]
        exhaustive = bool(record.get("labels_exhaustive", self.labels_exhaustive))
        for q in queries:
            q["is_exhaustive"] = exhaustive
        return queries, annotations

    def loadImagesFromDatapoint(self, idx):
        images = super().loadImagesFromDatapoint(idx)
        record = self._raw_data[idx // len(self.category_chunks)]["image"]
        for key in ("view_angles", "patient_id", "phase", "vessel_name"):
            if key in record:
                images[0][key] = record[key]
        return images


@DATASETS.register()
class AngioImageDataset(Sam3ImageDataset):
    """Sam3ImageDataset over our COCO export: attaches ``view_angles`` (2,) and ``view_known`` to
    each Datapoint. ``require_view_angles=True`` makes a frame without angles an error."""

    def __init__(self, *args, require_view_angles: bool = False, labels_exhaustive: bool = True,
                 coco_json_loader=None, **kwargs):
        import functools

        if coco_json_loader is None:
            coco_json_loader = functools.partial(AngioCocoLoader, include_negatives=True,
                                                 labels_exhaustive=labels_exhaustive)
        self.require_view_angles = require_view_angles
        super().__init__(*args, coco_json_loader=coco_json_loader, **kwargs)
        self._check_angles()

    def _check_angles(self) -> None:
        # Fail at start-up, naming the image, rather than mid-epoch.
        raw = getattr(self.coco, "_raw_data", None)
        if raw is None:
            return
        for entry in raw:
            rec = entry["image"]
            where = f"{self.annFile}: image id {rec.get('id')} ({rec.get('file_name')})"
            angles = parse_view_angles(rec, where)
            if angles is None and self.require_view_angles:
                raise DataError(
                    f"{where} has no view_angles (expected degrees, LAO/CRA positive); pass "
                    f"data.require_view_angles=false to train without view conditioning"
                )

    def load_queries(self, pil_images, annotations, queries, img_metadata):
        datapoint = super().load_queries(pil_images, annotations, queries, img_metadata)
        meta = img_metadata[0] if img_metadata else {}
        angles = parse_view_angles(meta, f"{self.annFile}: image {meta.get('original_img_id')}")
        datapoint.view_known = angles is not None
        datapoint.view_angles = torch.tensor(angles or UNKNOWN_ANGLES, dtype=torch.float32)
        return datapoint


@dataclass
class AngioBatchedDatapoint(BatchedDatapoint):
    """SAM3's BatchedDatapoint plus per-image view angles. Being a dataclass field (not an ad-hoc
    attribute) is what lets the angles survive SAM3's ``copy_data_to_device``."""

    view_angles: Optional[torch.Tensor] = None  # (B_img, 2) degrees
    view_known: Optional[torch.Tensor] = None  # (B_img,) bool


def collate_fn_angio(batch: List[Any], dict_key: str, **kwargs) -> Dict[str, AngioBatchedDatapoint]:
    """SAM3's ``collate_fn_api`` + view angles. Datapoints without angles (ARCADE, or a pipeline
    without our dataset) count as unknown."""
    out = collate_fn_api(batch, dict_key, **kwargs)
    base = out[dict_key]
    angles, known = [], []
    for dp in batch:
        a = getattr(dp, "view_angles", None)
        k = bool(getattr(dp, "view_known", False)) and a is not None
        for _ in dp.images:
            angles.append(a if k else torch.tensor(UNKNOWN_ANGLES))
            known.append(k)
    out[dict_key] = AngioBatchedDatapoint(
        **{f.name: getattr(base, f.name) for f in fields(BatchedDatapoint)},
        view_angles=torch.stack(angles).float(),
        view_known=torch.tensor(known, dtype=torch.bool),
    )
    return out


DATASETS.register(collate_fn_angio)
