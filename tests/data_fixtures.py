"""Small data sets for the data tests: a hand-made study CSV (known pixels, every column), and a
cached tiny synthetic set. Imported by tests/test_data_*.py (tests/ is on sys.path via conftest)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from sam3_angio.data.layout import ALL_COLUMNS

H, W, T = 32, 40, 3  # frame size and cine length of the hand-made set

_CACHE: Dict[tuple, Path] = {}


def _png(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def write_handmade(root: Path, n_cines: int = 2) -> Path:
    """A study-layout data set with known content; returns the CSV path.

    Cine ``c`` is ``(T, H, W)`` uint8 with pixel value ``10 * c + t`` (+ a gradient). Two rows per
    cine share frame 1 (segments 12 and 13: two annotations on one image); cine 0 is train, the
    others val. Pseudo-labels are (H/2, W/2) - smaller than the frame, as DeepSA's are.
    """
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("cines", "masks", "pseudo", "contours"):
        (root / sub).mkdir(exist_ok=True)
    rows: List[dict] = []
    yy, xx = np.mgrid[0:H, 0:W]
    for c in range(n_cines):
        cine = np.stack([(10 * c + t + xx + yy).astype(np.uint8) for t in range(T)])
        np.save(root / "cines" / f"p{c}.npy", cine)
        pseudo = np.zeros((H // 2, W // 2), bool)
        pseudo[2:10, 3:15] = True
        pseudo[5, 0:20] = True
        _png(root / "pseudo" / f"p{c}.png", pseudo)
        for seg, (y0, y1, x0, x1) in ((12, (4, 12, 5, 30)), (13, (14, 20, 8, 38))):
            m = np.zeros((H, W), bool)
            m[y0:y1, x0:x1] = True
            m[y0, x0] = False  # not a plain rectangle
            _png(root / "masks" / f"p{c}_{seg}.png", m)
            contours = {
                "view_angles": {"primary": -30.0 + c, "secondary": 25.0},
                "centerline": [[float(x0), float((y0 + y1) / 2)], [float(x1 - 1), float((y0 + y1) / 2)]],
                "lumen_edges": {"left": [[float(x0), float(y0)]], "right": [[float(x0), float(y1 - 1)]]},
                "stenosis": {"center": [float((x0 + x1) / 2), float((y0 + y1) / 2)], "length_px": 6.0}
                if seg == 13 else None,
            }
            (root / "contours" / f"p{c}_{seg}.json").write_text(json.dumps(contours))
            rows.append({
                "patient_id": f"P{c}", "vessel_pattern": "PROX_LAD" if seg == 12 else "MID_LAD",
                "phase": "PRE", "vessel_name": "LAD", "cine_path": f"cines/p{c}.npy", "frame_index": "1",
                "contours_path": f"contours/p{c}_{seg}.json", "vessel_mask_actual_path": f"masks/p{c}_{seg}.png",
                "deepsa_pseudo_label_path": f"pseudo/p{c}.png", "cass_segment": str(seg),
                "cass_segment_original": str(seg), "split": "train" if c == 0 else "val",
                "stenosis_pct": "70.0" if seg == 13 else "", "mld_mm": "0.9" if seg == 13 else "",
                "reference_diameter_mm": "3.0" if seg == 13 else "", "mm_per_pixel": "0.3",
            })
    return write_csv(root / "study.csv", rows)


def write_csv(path: Path, rows: List[dict], columns: Optional[List[str]] = None) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns or list(ALL_COLUMNS), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def read_rows(csv_path: Path) -> List[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def tiny_synthetic(tmp_root: Path, n_patients: int = 3, seed: int = 0, size: int = 96, frames: int = 4) -> Path:
    """A tiny generated set (cached for the session); returns its CSV path."""
    key = (n_patients, seed, size, frames)
    if key not in _CACHE:
        from sam3_angio.data.synthetic import generate_dataset

        out = tmp_root / f"syn_{n_patients}_{seed}_{size}_{frames}"
        _CACHE[key] = generate_dataset(out, n_patients=n_patients, seed=seed, frames=frames, size=size,
                                       pseudo_label_size=64, progress=False)
    return _CACHE[key]
