"""Click-to-correct at inference: the Predictor API and tools/predict.py --click/--segment, with a run
trained with training.modes=[automatic,proofread]; the overlay shows the clicks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from sam3_angio.errors import ConfigError


@pytest.fixture(scope="module")
def proofread_predictor(proofread_cass_run):
    from sam3_angio.inference import Predictor

    return Predictor.from_checkpoint(str(proofread_cass_run / "checkpoints" / "checkpoint.pt"))


def test_predictor_correct_returns_the_segments_mask_and_the_clicks(proofread_predictor, val_frames):
    (frame, _), _ = val_frames
    name = proofread_predictor.categories[0][1]
    h, w = frame.shape[:2]
    clicks = [(w * 0.4, h * 0.5, True), (w * 0.8, h * 0.2, False)]
    fixed = proofread_predictor.correct(frame, clicks, name)
    assert fixed is not None and fixed["corrected"] is True
    assert fixed["cass_name"] == name and fixed["mask"].shape == (h, w) and fixed["mask"].dtype == bool
    assert [c["positive"] for c in fixed["clicks"]] == [True, False]
    moved = proofread_predictor.correct(frame, [(w * 0.7, h * 0.8, True)], name)
    # The clicks reach the model: moving them changes the raw outputs, hence (in general) the answer.
    assert moved is not None and moved["cass_name"] == name
    with pytest.raises(ConfigError, match="outside"):
        proofread_predictor.correct(frame, [(w + 5, 1, True)], name)
    with pytest.raises(ConfigError, match="not a category"):
        proofread_predictor.correct(frame, clicks, "left ventricle")


def test_clicks_move_the_proofread_outputs(proofread_predictor, val_frames):
    import torch

    from sam3_angio.inference.frames import collate_frames, frame_datapoint
    from sam3_angio.model.prompt_encoder import Clicks

    (frame, _), _ = val_frames
    p = proofread_predictor
    dp = frame_datapoint(frame, None, p.categories[:1], 0)
    batch = collate_frames([dp], p.transforms, p.with_masks)
    with torch.no_grad():
        a = p.model(batch, clicks=Clicks.of([[(0.3, 0.3, True)]], [0])).output[-1][-1]["pred_masks"]
        b = p.model(batch, clicks=Clicks.of([[(0.7, 0.7, True)]], [0])).output[-1][-1]["pred_masks"]
        c = p.model(batch).output[-1][-1]["pred_masks"]
    assert not torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-5)


def test_a_run_trained_without_proofread_takes_no_clicks(cass_predictor, val_frames):
    (frame, _), _ = val_frames
    with pytest.raises(ConfigError, match="proofread"):
        cass_predictor.correct(frame, [(10, 10, True)], cass_predictor.categories[0][1])


def test_predict_cli_click_corrects_the_segment_and_draws_the_clicks(proofread_cass_run, val_frames, tmp_path):
    import imageio.v3 as iio

    (frame, _), _ = val_frames
    iio.imwrite(tmp_path / "frame.png", frame)
    from sam3_angio.cass import cass_name

    name = cass_name(1)
    out = tmp_path / "pred"
    cmd = [sys.executable, str(ROOT / "tools" / "predict.py"), str(tmp_path / "frame.png"), "--checkpoint",
           str(proofread_cass_run / "checkpoints" / "checkpoint.pt"), "--out", str(out), "--quiet",
           "--click", "60,64", "--click", "20,20:neg", "--segment", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "frame" / "predictions.json").read_text())
    fixed = [a for a in doc["annotations"] if a.get("corrected")]
    assert len(fixed) == 1 and fixed[0]["cass_name"] == name
    assert [c["positive"] for c in fixed[0]["clicks"]] == [True, False]
    assert sum(a["cass_name"] == name for a in doc["annotations"]) == 1  # the corrected one replaces the rest
    picture = iio.imread(next((out / "frame").glob("overlay*.png")))
    green = (picture[..., 0] < 50) & (picture[..., 1] > 200) & (picture[..., 2] < 50)
    red = (picture[..., 0] > 200) & (picture[..., 1] < 50) & (picture[..., 2] < 50)
    assert green.any() and red.any()

    bad = subprocess.run([*cmd[:-2]], cwd=ROOT, capture_output=True, text=True, timeout=600)  # --click, no --segment
    assert bad.returncode == 2 and "--segment" in bad.stderr and "Traceback" not in bad.stderr
