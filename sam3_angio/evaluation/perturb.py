"""Predictions made from a ground truth: exact copies (a metric sanity check) and deterministic
perturbations (dilated/eroded/shifted masks, jittered boxes, drops, swapped classes, false positives,
random scores) that exercise every metric the way an imperfect model would.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import pycocotools.mask as mask_utils
from scipy import ndimage

from .ground_truth import GroundTruth


def _rle_json(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def gt_as_predictions(gt_json: Any, score: float = 1.0) -> List[dict]:
    """Every ground-truth annotation as a COCO result: its box, its mask as RLE, one score."""
    gt = gt_json if isinstance(gt_json, GroundTruth) else GroundTruth(gt_json)
    out = []
    for image_id in gt.image_ids:
        for a in gt.annotations(image_id):
            r = {"image_id": image_id, "category_id": a["category_id"], "bbox": [float(v) for v in a["bbox"]], "score": float(score)}
            if gt.has_segm:
                r["segmentation"] = _rle_json(gt.rle(a))
            out.append(r)
    return out


def perturb_predictions(
    gt_json: Any,
    seed: int = 0,
    *,
    p_drop: float = 0.1,
    p_swap: float = 0.05,
    fp_per_image: float = 0.5,
    max_shift: int = 3,
    box_jitter: float = 0.05,
) -> List[dict]:
    """A deterministic imperfect copy of the ground truth as COCO results (RLE masks + boxes).

    Per annotation (random stream seeded by ``(seed, image index)``, so images are independent):
    dropped with ``p_drop``; else its mask is dilated by 1-2 px, eroded by 1 px, shifted by up to
    ``max_shift`` px, or kept (a quarter each); the box is the new mask's box with each side moved by
    up to ``box_jitter`` of its size; the category is swapped for another annotated one with ``p_swap``;
    score uniform in [0.3, 1). Per image, Poisson(``fp_per_image``) false positives: a copy of one of
    its masks moved 20-60 px, any category, score uniform in [0.05, 0.7).
    """
    gt = gt_json if isinstance(gt_json, GroundTruth) else GroundTruth(gt_json)
    gt.prepare_masks()
    cats = sorted({a["category_id"] for a in gt.coco.dataset["annotations"]}) or list(gt.cat_ids)
    out: List[dict] = []
    for idx, image_id in enumerate(gt.image_ids):
        rng = np.random.default_rng([int(seed), idx])
        h, w = gt.hw(image_id)
        anns = gt.annotations(image_id)
        for a in anns:
            if rng.random() < p_drop:
                continue
            m = mask_utils.decode(gt.rle(a)).astype(bool)
            op = rng.integers(4)
            if op == 0:
                m = ndimage.binary_dilation(m, iterations=int(rng.integers(1, 3)))
            elif op == 1:
                e = ndimage.binary_erosion(m)
                m = e if e.any() else m
            elif op == 2:
                m = _shift(m, int(rng.integers(-max_shift, max_shift + 1)), int(rng.integers(-max_shift, max_shift + 1)))
            cat = a["category_id"]
            if len(cats) > 1 and rng.random() < p_swap:
                cat = int(rng.choice([c for c in cats if c != cat]))
            out.append(_record(image_id, cat, m, float(rng.uniform(0.3, 1.0)), rng, box_jitter, h, w))
        for _ in range(int(rng.poisson(fp_per_image)) if anns else 0):
            src = anns[int(rng.integers(len(anns)))]
            m = mask_utils.decode(gt.rle(src)).astype(bool)
            dy, dx = (int(v) * int(rng.choice([-1, 1])) for v in rng.integers(20, 61, size=2))
            m = _shift(m, dy, dx)
            if not m.any():
                continue
            out.append(_record(image_id, int(rng.choice(cats)), m, float(rng.uniform(0.05, 0.7)), rng, box_jitter, h, w))
    return out


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = m[ys, xs]
    return out


def _record(image_id, cat, m, score, rng, box_jitter, h, w) -> Dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
    j = rng.uniform(-box_jitter, box_jitter, size=4) * np.array([bw, bh, bw, bh])
    x0 = min(max(0.0, x + j[0]), w - 1.0)
    y0 = min(max(0.0, y + j[1]), h - 1.0)
    x1 = min(max(x0 + 1.0, x + bw + j[2]), float(w))
    y1 = min(max(y0 + 1.0, y + bh + j[3]), float(h))
    return {
        "image_id": image_id,
        "category_id": int(cat),
        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        "score": round(score, 5),
        "segmentation": _rle_json(rle),
    }
