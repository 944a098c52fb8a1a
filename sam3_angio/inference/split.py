"""Predicting a whole COCO split with a Predictor (``tools/eval.py`` model mode): every image read from
disk as a new angiogram would be, its view angles from its image record, named by the same Predictor
``tools/predict.py`` uses."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig
from PIL import Image as PILImage

from sam3_angio.errors import DataError
from sam3_angio.inference.predictor import Predictor


def split_paths(cfg: DictConfig, split: str) -> Tuple[str, str]:
    """``(annotations.json, images folder)`` of ``split`` in a run's config (train/val as configured,
    any other split under ``paths.coco_root``)."""
    if split in ("train", "val"):
        return str(cfg.data[f"{split}_json"]), str(cfg.data[f"{split}_images"])
    root = str(cfg.paths.coco_root)
    return os.path.join(root, split, "annotations.json"), os.path.join(root, split, "images")


def read_split_image(path: str) -> np.ndarray:
    """A split's image as the dataset reads it (``PIL.open().convert("RGB")``): (H, W, 3) uint8."""
    try:
        with PILImage.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def _read_coco(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read the ground truth {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{path}: expected a COCO file with an 'images' list")
    return data


def predict_split(predictor: Predictor, gt_json: str, images_dir: str, limit: Optional[int] = None,
                  progress: bool = True) -> List[dict]:
    """Named instances (COCO results) of every image of ``gt_json``, in its image order, asking the text
    queries of its categories (as validation does)."""
    for path, kind in ((gt_json, "annotations"), (images_dir, "images folder")):
        if not os.path.exists(path):
            raise DataError(f"{kind} not found at {path} (convert the data first, or pass overrides such as "
                            f"paths.data_root=...)")
    gt = _read_coco(gt_json)
    records = gt["images"][: limit or None]
    categories = [(int(c["id"]), str(c["name"])) for c in gt.get("categories", [])]  # the queries validation asks
    results: List[dict] = []
    n, bs, t0 = len(records), predictor.batch_size, time.time()
    for start in range(0, n, bs):
        chunk = records[start:start + bs]
        frames = [read_split_image(os.path.join(images_dir, r["file_name"])) for r in chunk]
        views = [r.get("view_angles") for r in chunk]
        for segs in predictor.predict(frames, views, [int(r["id"]) for r in chunk], categories=categories):
            results += segs
        done = min(n, start + bs)
        if progress and (done % 10 < bs or done == n):
            print(f"predict: {done}/{n} images ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    return results
