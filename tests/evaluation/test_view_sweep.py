"""The angle-sweep diagnostic (sam3_angio/evaluation/view_sweep.py): a model that uses the angles moves
its outputs when only the angles change; the same model with conditioning off moves nothing."""

import math

import pytest

from sam3_angio.evaluation.view_sweep import STANDARD_VIEWS, angle_sweep

VIEWS = [(p, s) for _, p, s in STANDARD_VIEWS[:3]]


def test_conditioned_model_moves_with_the_angles(cass_predictor, val_frames):
    frames = val_frames[0][:1]
    r = angle_sweep(cass_predictor, frames, VIEWS)
    assert r["n_frames"] == 1 and r["n_views"] == 3
    assert r["embedding_cosine"] < 0.999  # the view encoder tells the views apart
    # one epoch moved FiLM off its identity start: the masks and the CASS probabilities follow the angles
    assert r["mask_prob_mad"] > 0 and r["mask_prob_var"] > 0 and r["score_mad"] > 0
    assert r["cass_prob_mad"] > 0
    assert 0.0 <= r["mask_flip_fraction"] <= 1.0 and 0.0 <= r["cass_name_change"] <= 1.0


def test_unconditioned_model_ignores_the_angles(cass_predictor, val_frames):
    model = cass_predictor.model
    model.view_conditioning = False  # every frame gets the "unknown" embedding, FiLM is skipped
    try:
        r = angle_sweep(cass_predictor, val_frames[0][:1], VIEWS)
    finally:
        model.view_conditioning = True
    assert r["embedding_cosine"] == pytest.approx(1.0, abs=1e-6)
    for k in ("mask_prob_mad", "mask_prob_var", "score_mad", "mask_flip_fraction", "cass_name_change"):
        assert r[k] == 0.0, k
    assert r["cass_prob_mad"] == 0.0 or math.isnan(r["cass_prob_mad"])


def test_sweep_needs_two_views_and_a_frame(val_frames):
    # the arguments are checked before any model runs: no predictor needed to refuse them
    with pytest.raises(ValueError, match="two views"):
        angle_sweep(None, val_frames[0][:1], VIEWS[:1])
    with pytest.raises(ValueError, match="one frame"):
        angle_sweep(None, [], VIEWS)
