"""A tiny COCO data set in our export layout, made in a fixture: a few frames with line-like
"vessel" masks per category and view angles. Independent of the synthetic generator so the trainer
tests do not depend on it."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_util


def _segment_mask(rng: np.random.Generator, size: int, angle_deg: float, slot: int) -> np.ndarray:
    """A thick polyline whose position depends on the slot (category) and the view angle."""
    m = np.zeros((size, size), dtype=np.uint8)
    cx = size * (0.25 + 0.5 * ((slot % 3) / 2.0)) + size * 0.15 * np.sin(np.radians(angle_deg))
    cy = size * (0.3 + 0.4 * ((slot // 3) % 2))
    t = np.linspace(-1, 1, 60)
    xs = cx + t * size * 0.18
    ys = cy + np.sin(t * 3 + slot) * size * 0.06 + rng.normal(0, 0.5, t.shape)
    r = max(2, size // 40)
    yy, xx = np.mgrid[0:size, 0:size]
    for x, y in zip(xs, ys):
        m[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = 1
    return m


def write_tiny_coco(
    root: str,
    categories: Sequence[Dict],
    n_train: int = 4,
    n_val: int = 2,
    size: int = 128,
    seed: int = 0,
    with_angles: bool = True,
    cats_per_image: int = 2,
    measured: bool = False,
) -> Dict[str, str]:
    """Write ``root/{train,val}/annotations.json`` + ``images/``; return the four paths. ``measured``:
    odd-numbered annotations carry ``stenosis_pct``, ``mld_mm``, ``reference_diameter_mm`` (as the
    synthetic generator's do), even-numbered ones none (as ARCADE's)."""
    rng = np.random.default_rng(seed)
    out = {}
    ann_id = 1
    for split, n in (("train", n_train), ("val", n_val)):
        img_dir = os.path.join(root, split, "images")
        os.makedirs(img_dir, exist_ok=True)
        images: List[dict] = []
        anns: List[dict] = []
        for i in range(n):
            primary = float(rng.uniform(-40, 40))
            secondary = float(rng.uniform(-30, 30))
            frame = rng.normal(150, 12, (size, size))
            chosen = rng.choice(len(categories), size=min(cats_per_image, len(categories)), replace=False)
            for slot in chosen:
                m = _segment_mask(rng, size, primary, int(slot))
                frame[m > 0] -= 80
                rle = mask_util.encode(np.asfortranarray(m))
                rle["counts"] = rle["counts"].decode("ascii")
                x, y, w, h = mask_util.toBbox(rle).tolist()
                anns.append({
                    "id": ann_id, "image_id": i + 1, "category_id": categories[slot]["id"],
                    "segmentation": rle, "area": float(mask_util.area(rle)), "bbox": [x, y, w, h],
                    "iscrowd": 0,
                })
                if measured and ann_id % 2 == 1:
                    pct, ref = 30.0 + (ann_id * 7) % 60, 2.5 + (ann_id % 3) * 0.5
                    anns[-1].update({"stenosis_pct": pct, "reference_diameter_mm": ref,
                                     "mld_mm": round(ref * (1 - pct / 100), 2)})
                ann_id += 1
            name = f"{split}_{i:03d}.png"
            Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(os.path.join(img_dir, name))
            rec = {"id": i + 1, "file_name": name, "height": size, "width": size,
                   "patient_id": f"P{i:03d}", "phase": "PRE"}
            rec["view_angles"] = {"primary": primary, "secondary": secondary} if with_angles else None
            images.append(rec)
        ann_path = os.path.join(root, split, "annotations.json")
        with open(ann_path, "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": list(categories)}, f)
        out[f"{split}_json"] = ann_path
        out[f"{split}_images"] = img_dir
    return out


def cass_categories(ids: Optional[Sequence[int]] = None) -> List[dict]:
    from sam3_angio.cass import coco_categories

    return coco_categories(ids)


VESSEL_CATEGORIES = [{"id": 1, "name": "coronary artery", "supercategory": "vessel"}]
