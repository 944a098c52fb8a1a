"""A raw frame -> the Datapoint our dataset would have made of it, so a frame from a DICOM, a cine or a PNG
goes through exactly the validation pipeline (same transforms, same collate) the model was scored with.

    image (H, W) uint8 (or (H, W, 3)) + view angles + categories
      -> AngioDatapoint: one PIL RGB image, one text query per category, no objects
      -> the config's val transforms -> collate_fn_angio -> AngioBatchedDatapoint
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image as PILImage
from sam3.train.data.sam3_image_dataset import FindQueryLoaded, Image, InferenceMetadata

from sam3_angio.data.dataset import AngioDatapoint, collate_fn_angio
from sam3_angio.errors import DataError
from sam3_angio.view_angles import ViewAngles


def to_rgb_image(image: np.ndarray, where: str = "frame") -> PILImage.Image:
    """(H, W) or (H, W, 1|3) uint8 -> PIL RGB, as the dataset's ``PIL.open(png).convert("RGB")`` gives."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint8:
        raise DataError(f"{where}: expected an 8-bit frame, found {a.dtype} (read it with "
                        f"sam3_angio.data.inputs, which windows 16-bit and float frames)")
    if a.ndim == 2:
        return PILImage.fromarray(a, mode="L").convert("RGB")
    if a.ndim == 3 and a.shape[2] == 3:
        return PILImage.fromarray(a, mode="RGB")
    raise DataError(f"{where}: expected (H, W) or (H, W, 3), found shape {a.shape}")


def frame_datapoint(image: np.ndarray, view: Optional[ViewAngles], categories: Sequence[Tuple[int, str]],
                    image_id: int = 0, where: str = "frame") -> AngioDatapoint:
    """The Datapoint ``AngioImageDataset`` makes for an image record without annotations, in
    validation mode: one exhaustive text query per category, the image's id and size as metadata."""
    pil = to_rgb_image(image, where)
    w, h = pil.size
    queries: List[FindQueryLoaded] = [
        FindQueryLoaded(
            query_text=name, image_id=0, input_bbox=None, input_bbox_label=None, input_points=None,
            object_ids_output=[], is_exhaustive=True, is_pixel_exhaustive=True, query_processing_order=0,
            inference_metadata=InferenceMetadata(
                coco_image_id=int(image_id), original_image_id=int(image_id), frame_index=-1,
                original_category_id=int(cat_id), original_size=(h, w), object_id=-1),
        )
        for cat_id, name in categories
    ]
    return AngioDatapoint(find_queries=queries, images=[Image(data=pil, objects=[], size=(h, w))],
                          raw_images=[pil], view=view)


def collate_frames(datapoints: Sequence[AngioDatapoint], transforms: Sequence[Any], with_seg_masks: bool,
                   dict_key: str = "angio"):
    """Apply the val ``transforms`` to each datapoint and collate them into one batch."""
    items = []
    for dp in datapoints:
        for t in transforms:
            dp = t(dp, epoch=0)
        items.append(dp)
    return collate_fn_angio(items, dict_key=dict_key, with_seg_masks=with_seg_masks)[dict_key]
