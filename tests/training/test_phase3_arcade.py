"""Phase 3 on real angiograms: a few ARCADE stenosis frames (../shared/data/arcade/stenosis_val)
imported with tools/import_arcade.py, stenosis.yaml trained a few steps on them through
tools/train.py; the run reports the ARCADE stenosis F1 and COCO AP, and the regression terms are
zero (ARCADE records no stenosis %, MLD or reference diameter)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ARCADE, ROOT, run_train, small_run_overrides

STENOSIS = ARCADE / "stenosis_val"


def _subset(src: dict, image_ids) -> dict:
    keep = set(image_ids)
    return {**src, "images": [im for im in src["images"] if im["id"] in keep],
            "annotations": [a for a in src["annotations"] if a["image_id"] in keep]}


def _import(coco: dict, work: Path, split: str) -> Path:
    path = work / f"arcade_{split}.json"
    path.write_text(json.dumps(coco))
    out = work / f"imported_{split}"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "import_arcade.py"), "--coco", str(path), "--images",
                        str(STENOSIS / "images"), "--out", str(out), "--task", "stenosis", "--split", split, "--quiet"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return out / split


@pytest.fixture(scope="module")
def arcade_stenosis_root(tmp_path_factory) -> Path:
    """paths.data_root with coco_stenosis/{train,val}: 4 + 2 ARCADE stenosis frames, imported."""
    src = json.loads((STENOSIS / "annotations.json").read_text())
    stenosis_cat = next(c["id"] for c in src["categories"] if c["name"] == "stenosis")
    with_lesion = sorted({a["image_id"] for a in src["annotations"] if a["category_id"] == stenosis_cat})
    work = tmp_path_factory.mktemp("arcade_phase3")
    root = work / "data"
    (root / "coco_stenosis").mkdir(parents=True)
    for split, ids in (("train", with_lesion[:4]), ("val", with_lesion[4:6])):
        _import(_subset(src, ids), work, split).rename(root / "coco_stenosis" / split)
    return root


@pytest.fixture(scope="module")
def arcade_stenosis_run(arcade_stenosis_root, tmp_path_factory):
    exp = tmp_path_factory.mktemp("arcade_stenosis_run")
    proc = run_train(["-c", "configs/angiography/stenosis.yaml",
                      *small_run_overrides(arcade_stenosis_root, exp, epochs=1)], check=True)
    return exp, proc


def test_import_gives_the_single_stenosis_category_at_full_size(arcade_stenosis_root):
    for split, n in (("train", 4), ("val", 2)):
        coco = json.loads((arcade_stenosis_root / "coco_stenosis" / split / "annotations.json").read_text())
        assert coco["categories"] == [{"id": 1, "name": "stenosis", "supercategory": "lesion"}]
        assert len(coco["images"]) == n and coco["annotations"]
        assert all(im["width"] == 512 and im["view_angles"] is None for im in coco["images"])


def test_phase3_trains_on_arcade_and_reports_arcade_f1_and_coco_ap(arcade_stenosis_run):
    exp, proc = arcade_stenosis_run
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["arcade.task"] == "stenosis" and metrics["arcade.n_images"] == 2
    for key in ("arcade_f1", "bbox.AP", "segm.AP", "bbox.AP50"):
        assert math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 1.0, key
    assert "arcade_f1" in proc.stdout and "bbox.AP" in proc.stdout  # the run says them
    stats = [json.loads(ln) for ln in (exp / "logs" / "train_stats.json").read_text().splitlines() if ln.strip()]
    assert stats and all(math.isfinite(s["Losses/train_all_loss"]) for s in stats)
    for name in ("loss_stenosis_pct", "loss_mld", "loss_reference_diameter"):  # nothing measured in ARCADE
        assert stats[-1][f"Losses/train_all_{name}"] == 0.0, name
    assert metrics["qca_head.n_regions"] == 0 and metrics["qca_head.mae_stenosis_pct"] is None
