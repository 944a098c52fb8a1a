"""tools/eval.py model mode: the checkpoint of a run, predicted again over the split through the
inference Predictor, gives exactly the named predictions (and so the metrics) the run's own validation
wrote."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def trained_cass(trained_cass_run):
    return trained_cass_run  # the session's one tiny CASS run (tests/conftest.py)


def _by_key(preds):
    return {(p["image_id"], p["category_id"], round(p["score"], 4)): p for p in preds}


def test_eval_model_mode_reproduces_the_runs_validation(trained_cass, tiny_data_root, tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "eval.py"),  # the run folder's own config
         "--checkpoint", str(trained_cass / "checkpoints" / "checkpoint.pt"), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ours = json.loads((out / "predictions.json").read_text())
    runs = json.loads((trained_cass / "predictions" / "predictions.json").read_text())
    assert len(ours) == len(runs) > 0
    a, b = _by_key(ours), _by_key(runs)
    assert set(a) == set(b)
    for k in a:
        assert a[k]["segmentation"] == b[k]["segmentation"] and a[k]["cass_name"] == b[k]["cass_name"]
        assert a[k]["cass_probs"] == b[k]["cass_probs"]
    metrics = json.loads((out / "metrics.json").read_text())
    run_metrics = json.loads((trained_cass / "metrics.json").read_text())
    for key in ("bbox.AP", "segm.AP", "segm.AP50", "dice", "cass.naming_top1", "cass.naming_match_rate"):
        assert metrics[key] == pytest.approx(run_metrics[key], abs=1e-9), key
    assert metrics["meta.model.model"] == "sam3_tiny" and metrics["meta.model.task"] == "cass"
    assert "sam3_tiny" in (out / "report.md").read_text()


def test_eval_model_mode_names_a_missing_split(trained_cass, tiny_data_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "eval.py"), "--checkpoint",  # the run folder's own config
         str(trained_cass / "checkpoints" / "checkpoint.pt"), "--split", "test", "--out", str(tmp_path),
         f"paths.data_root={tiny_data_root}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 2
    assert "split 'test'" in proc.stderr and "Traceback" not in proc.stderr
