"""Masks with known answers for the QCA tests: digital tubes (sam3_angio.qca.phantom) with cosine
narrowings, written as PNG / COCO / predictions files when a test needs files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from sam3_angio.qca import phantom


def tube(shape=(256, 256), length=200.0, angle=17.0, bend=0.0, diameter=10.0, start=(28.0, 70.0),
         lesions: Sequence[Tuple[float, float, float]] = (), taper: float = 0.0):
    """``(mask, path (N, 2), diameters (N,))``: a tube of ``diameter`` px (minus ``taper`` px per px of
    length) with ``lesions`` = ``(centre_px, length_px, percent)`` along it."""
    path = phantom.curved_path(length, start, angle, bend)
    s = np.arange(len(path)) * 0.25
    d = diameter - taper * s
    for c, L, pct in lesions:
        d = d * phantom.cosine_narrowing(s, c, L, pct)
    return phantom.tube_mask(path, d / 2.0, shape), path, d


def save_png(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path


def rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def write_coco(path: Path, masks: List[np.ndarray], mm_per_pixel=0.25, file_name="frame.png",
               category=(13, "mid LAD")) -> Path:
    H, W = masks[0].shape
    data = {
        "images": [{"id": 1, "file_name": file_name, "height": H, "width": W, "mm_per_pixel": mm_per_pixel}],
        "categories": [{"id": category[0], "name": category[1]}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": category[0], "segmentation": rle(m),
                         "iscrowd": 0} for i, m in enumerate(masks)],
    }
    path.write_text(json.dumps(data))
    return path


def write_predictions(path: Path, masks: List[np.ndarray], scores: Sequence[float], mm_per_pixel=None,
                      cass_name="mid LAD") -> Path:
    recs = []
    for m, sc in zip(masks, scores):
        r = {"image_id": 1, "category_id": 13, "score": float(sc), "segmentation": rle(m), "cass_name": cass_name}
        if mm_per_pixel is not None:
            r["mm_per_pixel"] = mm_per_pixel
        recs.append(r)
    path.write_text(json.dumps(recs))
    return path
