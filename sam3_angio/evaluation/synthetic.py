"""Synthetic COCO ground truth and predictions for evaluation tests and benchmarks (no images).

Objects are vessel-like ribbons (a curved centre line widened to 3-10 px) as polygons; predictions are
the same ribbons with jittered vertices, as RLE, plus dropped objects and false positives. Deterministic
for a seed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_utils


def _ribbon(rng: np.random.Generator, h: int, w: int) -> List[float]:
    """A curved band as one polygon [x0, y0, ...] inside an h x w frame."""
    p0 = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
    p2 = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
    p1 = (p0 + p2) / 2 + rng.normal(0, 0.15 * min(h, w), size=2)
    t = np.linspace(0, 1, 12)[:, None]
    c = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    d = np.gradient(c, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
    half = rng.uniform(1.5, 5.0)
    left, right = c + half * n, c - half * n
    pts = np.concatenate([left, right[::-1]])
    pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
    pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def synthetic_coco(
    n_images: int,
    cat_ids: Sequence[int] = (1, 2),
    size: int = 64,
    seed: int = 0,
    p_present: float = 1.0,
    names: Optional[Dict[int, str]] = None,
) -> dict:
    """A COCO dataset: ``n_images`` frames of ``size`` x ``size``, each with one ribbon per category
    (kept with probability ``p_present``)."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i}.png", "height": size, "width": size})
        for c in cat_ids:
            if rng.random() >= p_present:
                continue
            poly = _ribbon(rng, size, size)
            rle = mask_utils.frPyObjects([poly], size, size)[0]
            x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": c, "segmentation": [poly],
                 "area": float(mask_utils.area(rle)), "bbox": [x, y, bw, bh], "iscrowd": 0}
            )
    cats = [{"id": c, "name": (names or {}).get(c, f"class {c}")} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}


def jittered_predictions(gt: dict, seed: int = 0, jitter: float = 1.5, p_drop: float = 0.1, n_fp: int = 2) -> List[dict]:
    """COCO results from ``gt``: each polygon with its vertices moved by N(0, ``jitter``) px, as RLE,
    with a jittered box and a random score; ``p_drop`` of the objects left out; ``n_fp`` false
    positives an image (another object's shape moved, any category, lower score)."""
    rng = np.random.default_rng(seed)
    size = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cat_ids = [c["id"] for c in gt["categories"]]
    by_image: Dict[int, List[dict]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out: List[dict] = []

    def add(image_id, cat, poly, score):
        h, w = size[image_id]
        rle = mask_utils.frPyObjects([poly], h, w)[0]
        if mask_utils.area(rle) == 0:
            return
        x, y, bw, bh = (float(v) for v in mask_utils.toBbox(rle))
        j = rng.normal(0, jitter, size=4)
        out.append({
            "image_id": image_id, "category_id": cat, "score": round(float(score), 5),
            "bbox": [x + j[0], y + j[1], max(1.0, bw + j[2]), max(1.0, bh + j[3])],
            "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
        })

    for im in gt["images"]:
        i = im["id"]
        h, w = size[i]
        anns = by_image.get(i, [])
        for a in anns:
            if rng.random() < p_drop:
                continue
            p = np.asarray(a["segmentation"][0]) + rng.normal(0, jitter, size=len(a["segmentation"][0]))
            add(i, a["category_id"], np.clip(p, 0, max(h, w) - 1).tolist(), rng.uniform(0.3, 1.0))
        for _ in range(n_fp if anns else 0):
            a = anns[int(rng.integers(len(anns)))]
            p = np.asarray(a["segmentation"][0]).reshape(-1, 2) + rng.uniform(-0.3, 0.3, size=2) * [w, h]
            p[:, 0] = np.clip(p[:, 0], 0, w - 1)
            p[:, 1] = np.clip(p[:, 1], 0, h - 1)
            add(i, int(rng.choice(cat_ids)), p.reshape(-1).tolist(), rng.uniform(0.05, 0.7))
    return out
