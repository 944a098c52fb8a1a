"""The mask-grid oracle (sam3_angio/evaluation/mask_grid.py) and bench/bench_mask_grid.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from sam3_angio.evaluation.mask_grid import grid_for_resolution, oracle_iou, summarize

ROOT = Path(__file__).resolve().parents[2]


def _disc(size: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius ** 2


def _line(size: int, width: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[size // 2: size // 2 + width, 10: size - 10] = True
    return m


def test_grid_follows_sam3s_patch_and_mask_upsampling():
    assert grid_for_resolution(224) == 64
    assert grid_for_resolution(1008) == 288
    with pytest.raises(ValueError, match="patch size 14"):
        grid_for_resolution(250)


def test_oracle_on_the_frames_own_grid_is_exact():
    rng = np.random.default_rng(0)
    mask = rng.random((48, 48)) > 0.7
    assert oracle_iou(mask, 48) == pytest.approx(1.0)


def test_a_thin_vessel_on_a_coarse_grid_is_out_of_reach_and_a_finer_grid_recovers_it():
    thin = _line(256, 2)
    coarse, fine = oracle_iou(thin, 64), oracle_iou(thin, 128)
    assert coarse < 0.5 < fine
    assert oracle_iou(_disc(256, 60), 64) > 0.95  # a wide structure is fine at 64
    assert oracle_iou(np.zeros((32, 32), bool), 8) == 1.0


def test_summary_counts_the_instances_that_reach_each_threshold():
    s = summarize([0.2, 0.5, 0.8, 1.0])
    assert s["n"] == 4 and s["min_iou"] == 0.2
    assert s["frac_iou_ge_0.5"] == 0.75 and s["frac_iou_ge_0.75"] == 0.5
    with pytest.raises(ValueError):
        summarize([])


def test_bench_mask_grid_end_to_end(tmp_path):
    masks = [_line(256, 3), _disc(256, 50)]
    coco = {"images": [{"id": i, "height": 256, "width": 256, "file_name": f"{i}.png"} for i in (1, 2)],
            "categories": [{"id": 1, "name": "coronary artery"}], "annotations": []}
    for i, m in enumerate(masks, start=1):
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        coco["annotations"].append({"id": i, "image_id": i, "category_id": 1, "segmentation": rle,
                                    "area": int(m.sum()), "bbox": [0, 0, 1, 1], "iscrowd": 0})
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps(coco))
    out = tmp_path / "grid.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_mask_grid.py"), "--coco", str(ann),
                          "--resolutions", "224", "--grids", "256", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    table = json.loads(out.read_text())["grids"]
    assert table["256"]["frac_iou_ge_0.5"] == 1.0
    assert table["64"]["frac_iou_ge_0.5"] == pytest.approx(0.5)  # the 3-px line is lost at 64, the disc is not
    assert "ratio" in run.stdout

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_mask_grid.py"), "--coco", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "broken.json" in run.stderr and "Traceback" not in run.stderr
