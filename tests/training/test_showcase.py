"""The README's main command, made smaller, from a fresh folder: the demo data are generated on first
use; the tiny profile with no phase 1 checkpoint scores the untrained model, trains phase 1
(``vessel_segmentation.yaml``), then phase 2 (CASS) initialised from it, and leaves a learning curve, an
overlay of validation predictions and an untrained-vs-trained summary in the experiment folder (their
existence and shape are checked here, not their values). A second start reuses the data and resumes
phase 2 from its own checkpoint: phase 1 neither trains nor initialises again.

One run serves all three behaviours because each is a minute of CPU on its own."""

from __future__ import annotations

import json
import math

import torch
from PIL import Image

from conftest import ROOT, run_train


def _loaded_lines(stdout: str):
    return [ln for ln in stdout.splitlines() if ln.startswith("checkpoint ") and "loaded" in ln]


def test_main_job_generates_data_trains_phase1_then_phase2_draws_figures_and_resumes(tmp_path):
    cfg = str(ROOT / "configs" / "angiography" / "cass.yaml")
    small = ["data.demo.n_patients=6", "profiles.sam3_tiny.limit_train_images=4"]
    first = run_train(["-c", cfg, *small, "trainer.max_epochs=1"], cwd=tmp_path, check=True)
    out = first.stdout

    # the data: generated and converted where the default data root points
    assert "generating" in out
    assert (tmp_path / "data" / "synthetic_demo" / "coco_cass" / "train" / "annotations.json").is_file()

    # phase 1 first, scored against the untrained start
    p1, exp = tmp_path / "experiments" / "vessel_segmentation", tmp_path / "experiments" / "cass"
    phase1_ckpt = p1 / "checkpoints" / "checkpoint.pt"
    assert "training phase 1" in out
    assert phase1_ckpt.is_file() and (p1 / "metrics.json").is_file()
    assert (p1 / "untrained" / "metrics.json").is_file()

    # phase 2 initialised from every phase 1 tensor, plus its own new parts
    loaded = _loaded_lines(out)
    assert loaded, out[-3000:]
    phase1_sd = torch.load(phase1_ckpt, map_location="cpu", weights_only=True)["model"]
    assert int(loaded[0].split("loaded ")[1].split(",")[0]) == len(phase1_sd)
    assert "new in phase 2" in out
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert all(f"detector.{k}" in ckpt["model"] for k in phase1_sd)
    assert math.isfinite(json.loads((exp / "metrics.json").read_text())["segm.AP"])

    # what the demo shows a user
    for name in ("learning_curve.png", "val_overlay.png"):
        with Image.open(exp / name) as im:
            assert im.size[0] > 200 and im.size[1] > 100, name
    summary = json.loads((exp / "learning_summary.json").read_text())
    assert "dice" in summary["phase1"] and "dice" in summary["untrained"] and "dice" in summary["phase2"]
    assert "learnt (validation, whole tree; untrained start -> after phase 1)" in out

    # second start, one more epoch: the data are reused, phase 2 resumes from its own checkpoint
    again = run_train(["-c", cfg, *small, "trainer.max_epochs=2"], cwd=tmp_path, check=True)
    assert "generating" not in again.stdout
    assert "training phase 1" not in again.stdout
    assert not _loaded_lines(again.stdout)
    assert "Resuming training from epoch: 1" in (exp / "logs" / "log.txt").read_text()
    # ...and its figures and summary keep the phase 1 it trained first (they were redrawn without it)
    assert "learnt (validation, whole tree; untrained start -> after phase 1)" in again.stdout, again.stdout[-3000:]
    resumed = json.loads((exp / "learning_summary.json").read_text())
    assert resumed["phase1"] == summary["phase1"] and resumed["untrained"] == summary["untrained"]
    final = json.loads((exp / "metrics.json").read_text())
    assert all(resumed["phase2"][k] == final[k] for k in resumed["phase2"])
