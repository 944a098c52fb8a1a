"""The demo shows learning: a phase 2 run of the tiny profile with no phase 1 checkpoint scores the
untrained model, trains phase 1 first, then phase 2 from it, and leaves a learning curve, an overlay of
validation predictions and an untrained-vs-trained summary in the experiment folder (their existence
and shape are checked here, not their values)."""

from __future__ import annotations

import json

from PIL import Image

from conftest import run_train, small_run_overrides


def test_demo_trains_phase1_first_and_draws_curve_and_overlay(tiny_data_root, tmp_path):
    exp = tmp_path / "cass"
    phase1 = tmp_path / "p1" / "checkpoints" / "checkpoint.pt"
    overrides = [o for o in small_run_overrides(tiny_data_root, exp, epochs=1)
                 if not o.startswith("profiles.sam3_tiny.phase1_first")]
    proc = run_train(["-c", "configs/angiography/cass.yaml", *overrides, "model.class_ids=[1,2,12,13]",
                      f"paths.phase1_checkpoint={phase1}"], check=True)
    assert "training phase 1" in proc.stdout
    assert phase1.is_file()                                         # phase 1 ran and phase 2 could start from it
    assert (tmp_path / "p1" / "metrics.json").is_file()
    assert (tmp_path / "p1" / "untrained" / "metrics.json").is_file()  # the start it is compared with
    for name in ("learning_curve.png", "val_overlay.png"):
        with Image.open(exp / name) as im:
            assert im.size[0] > 200 and im.size[1] > 100, name
    summary = json.loads((exp / "learning_summary.json").read_text())
    assert "dice" in summary["phase1"] and "dice" in summary["untrained"] and "dice" in summary["phase2"]
    assert "learnt (validation, whole tree; untrained start -> after phase 1)" in proc.stdout
