"""COCO pieces shared by the CSV converter and the ARCADE importer: RLE encoding of masks,
categories per task, and writing one split folder (``<split>/annotations.json`` + ``images/``).

Masks are ``(H, W)`` bool; RLE counts are stored as str (pycocotools' compressed form), boxes as
``[x, y, w, h]`` in pixels, areas as mask pixel counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from pycocotools import mask as mask_util

from ..cass import coco_categories
from ..errors import DataError
from .polygons import PolygonError, polygons_to_rle

PathLike = Union[str, Path]

VESSEL_CATEGORY = {"id": 1, "name": "coronary artery", "supercategory": "vessel"}
STENOSIS_CATEGORY = {"id": 1, "name": "stenosis", "supercategory": "lesion"}

ANNOTATIONS_JSON = "annotations.json"
IMAGES_DIR = "images"


def categories_for(task: str, class_ids: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO categories of a task: vessel -> [1 "coronary artery"], stenosis -> [1 "stenosis"],
    cass -> CASS numbers with their text prompts (default: the study's 14)."""
    if task == "vessel":
        return [dict(VESSEL_CATEGORY)]
    if task == "stenosis":
        return [dict(STENOSIS_CATEGORY)]
    if task == "cass":
        return coco_categories(class_ids)
    raise ValueError(f"unknown task {task!r}; expected vessel, cass or stenosis")


def rle_from_mask(mask: np.ndarray) -> dict:
    """``(H, W)`` bool -> ``{"segmentation": RLE with str counts, "bbox": [x, y, w, h], "area": int}``."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return _finish(rle)


def rle_from_polygons(polygons: List[List[float]], height: int, width: int, where: str = "polygons") -> dict:
    """COCO polygons (pixel coordinates) -> the same record as :func:`rle_from_mask`.

    Checked before pycocotools sees them (:mod:`sam3_angio.data.polygons`); a polygon that fails is a
    :class:`DataError` whose message starts with ``where`` (the file and the annotation id).
    """
    try:
        rle = polygons_to_rle(polygons, height, width)
    except PolygonError as e:
        raise DataError(f"{where}: {e}; fix or remove this annotation") from None
    return _finish(rle)


def _finish(rle: dict) -> dict:
    area = int(mask_util.area(rle))
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    counts = rle["counts"]
    return {
        "segmentation": {"size": [int(rle["size"][0]), int(rle["size"][1])],
                         "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts},
        "bbox": bbox,
        "area": area,
    }


def decode_segmentation(segmentation: dict) -> np.ndarray:
    """RLE (str or bytes counts) -> ``(H, W)`` bool."""
    rle = dict(segmentation)
    if isinstance(rle["counts"], str):
        rle["counts"] = rle["counts"].encode("ascii")
    return mask_util.decode(rle).astype(bool)


def write_split(split_dir: Path, images: List[dict], annotations: List[dict], categories: List[dict],
                info: Dict) -> Path:
    """Write ``split_dir/annotations.json``; the images are already in ``split_dir/images``."""
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / ANNOTATIONS_JSON
    coco = {"info": info, "licenses": [], "categories": categories, "images": images, "annotations": annotations}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(coco, f, separators=(",", ":"))
    return path
