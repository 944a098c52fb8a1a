"""clDice and the Frangi baseline on drawn vessels."""

from __future__ import annotations

import numpy as np

from sam3_angio.evaluation.vesselness import FrangiBaseline, cldice, dice


def _line(width: int, size: int = 96, row: int = 48) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[row - width // 2: row + width - width // 2, 10:86] = True
    return m


def test_cldice_rewards_the_centreline_not_the_width():
    gt = _line(3)
    fat = _line(9)
    assert cldice(gt, gt) == 1.0
    assert dice(gt, fat) < 0.6                   # pixel overlap punishes the width...
    assert cldice(gt, fat) > 0.95                # ...the centreline is all there
    assert cldice(gt, _line(3, row=20)) == 0.0   # a vessel elsewhere
    assert cldice(gt, np.zeros_like(gt)) == 0.0
    assert cldice(np.zeros_like(gt), np.zeros_like(gt)) == 1.0


def test_frangi_baseline_finds_dark_vessels_with_a_threshold_fitted_on_training_frames():
    rng = np.random.default_rng(0)

    def frame(row):
        m = _line(4, row=row)
        img = rng.normal(160, 6, m.shape)
        img[m] -= 70
        return img, m

    train = [frame(r) for r in (30, 50, 70)]
    val = [frame(r) for r in (40, 60)]
    base = FrangiBaseline().fit([i for i, _ in train], [m for _, m in train])
    scores = base.score([i for i, _ in val], [m for _, m in val])
    assert 0 < scores["threshold"] < 1
    assert scores["dice"] > 0.5 and scores["cldice"] > 0.7, scores
