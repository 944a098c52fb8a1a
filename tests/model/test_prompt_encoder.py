"""Proofread mode: clicks reach the model through the prompt encoder (not SAM3's ignored input_points)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from model_fixtures import last_step as _last, wrapper as _wrapper
from sam3_angio.errors import ConfigError
from sam3_angio.model.prompt_encoder import Clicks, render_clicks, sample_clicks
from sam3_angio.registry import PROMPT_ENCODERS


def _clicks_at(x, y, n_images=2, target_class=0):
    return Clicks.of([[(x, y, True), (1 - x, 1 - y, False)]] * n_images, [target_class] * n_images)


def test_registered_and_renders_positive_negative_and_class():
    assert "sparse_conv" in PROMPT_ENCODERS
    # cell centres: (x, y) = ((col + 0.5) / 8, (row + 0.5) / 8)
    clicks = Clicks.of([[(2.5 / 8, 1.5 / 8, True), (6.5 / 8, 5.5 / 8, False)]], [2])
    m = render_clicks(clicks, (8, 8), num_classes=4)
    assert m.shape == (1, 6, 8, 8)
    assert m[0, 0, 1, 2] > 0.99 and m[0, 0, 5, 6] < 0.01  # positive blob at row 1, column 2
    assert m[0, 1, 5, 6] > 0.99 and m[0, 1, 1, 2] < 0.01  # negative blob
    assert m[0, 2 + 2, 1, 2] > 0.99 and m[0, 2:].sum(0)[5, 6] < 0.01  # class one-hot at the positive point only


def test_at_init_proofread_equals_automatic(tiny_sam3, cass_batch):
    model = _wrapper(copy.deepcopy(tiny_sam3), modes=["automatic", "proofread"]).eval()
    with torch.no_grad():
        auto = _last(model(cass_batch))
        proof = _last(model(cass_batch, clicks=_clicks_at(0.3, 0.4)))
    for key in ("pred_logits", "pred_boxes", "pred_masks", "semantic_seg"):
        assert torch.allclose(auto[key], proof[key], atol=1e-3, rtol=1e-3), key
    assert "clicks" in proof and "clicks" not in auto


def test_clicks_without_prompt_encoder_is_an_error(tiny_sam3, cass_batch):
    model = _wrapper(copy.deepcopy(tiny_sam3)).eval()
    with pytest.raises(ConfigError, match="prompt encoder"):
        model(cass_batch, clicks=_clicks_at(0.3, 0.4))
    with pytest.raises(ConfigError, match="training.modes"):
        _wrapper(copy.deepcopy(tiny_sam3), modes=["automatic", "clicky"])


@pytest.mark.parametrize("sampling", ["uniform", "centreline"])
def test_simulated_clicks_fall_inside_and_outside_the_target(sampling):
    seg = torch.zeros(3, 32, 32, dtype=torch.bool)
    seg[0, 10:14, 2:30] = True   # image 0, a horizontal vessel
    seg[1, 2:30, 20:23] = True   # image 0, another segment
    seg[2, 5:9, 5:9] = True      # image 1
    clicks = sample_clicks(seg, torch.tensor([0, 0, 1]), torch.tensor([0, 3, 1]), num_images=3, num_pos_points=3,
                           num_neg_points=2, point_sampling=sampling, rng=np.random.default_rng(0))
    assert clicks.labels.shape == (3, 5)
    assert (clicks.labels[2] == -1).all() and clicks.target_class[2] == -1  # a frame without objects
    for b in (0, 1):
        t = int(clicks.target_class[b])
        target = seg[{0: 0, 3: 1, 1: 2}[t]]
        for (x, y), lab in zip(clicks.points[b].tolist(), clicks.labels[b].tolist()):
            inside = bool(target[int(y * 32), int(x * 32)])
            assert inside == (lab == 1)
    assert (clicks.labels[:2] == 1).sum(1).tolist() == [3, 3]
