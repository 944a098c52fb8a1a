"""The learning-rate schedule: SAM3's own on long runs, and one that trains on short runs (a demo's
8-step phase 2, a smoke test) instead of dividing by zero or staying near 0."""

from __future__ import annotations

import math

import pytest
from sam3.train.optim.schedulers import InverseSquareRootParamScheduler

from sam3_angio.config import compose, finalize
from sam3_angio.training.schedulers import ShortRunSafeInverseSqrtScheduler

ARGS = dict(base_lr=1e-3, warmup_steps=20, cooldown_steps=40, timescale=20)


def _curve(scheduler, total):
    # SAM3's Trainer calls it with the step index and where = step / total steps, for steps 0 .. total-1
    return [scheduler(step=i, where=i / total) for i in range(total)]


@pytest.mark.parametrize("total", [120, 216, 1000])
def test_a_run_at_least_twice_as_long_as_both_ramps_gets_sam3s_schedule_unchanged(total):
    assert _curve(ShortRunSafeInverseSqrtScheduler(**ARGS), total) == \
        _curve(InverseSquareRootParamScheduler(**ARGS), total)


def test_a_run_as_long_as_the_warm_up_does_not_divide_by_zero():
    with pytest.raises(ZeroDivisionError):  # what SAM3's own does (why this class exists)
        _curve(InverseSquareRootParamScheduler(**ARGS), 20)
    lrs = _curve(ShortRunSafeInverseSqrtScheduler(**ARGS), 20)
    assert all(math.isfinite(v) and 0.0 <= v <= ARGS["base_lr"] for v in lrs)


@pytest.mark.parametrize("total", [4, 8, 16, 30])
def test_a_short_run_trains_near_its_learning_rate(total):
    sam3 = _curve(InverseSquareRootParamScheduler(**ARGS), total)
    ours = _curve(ShortRunSafeInverseSqrtScheduler(**ARGS), total)
    assert max(sam3) < 0.3 * ARGS["base_lr"]   # SAM3's ramps overlap: a few per cent of the rate
    assert max(ours) > 0.6 * ARGS["base_lr"]
    assert ours[0] == 0.0 and ours[-1] < max(ours)  # still a warm-up and a cooldown
    assert all(0.0 <= v <= ARGS["base_lr"] for v in ours)


def test_bad_ramp_fraction_is_refused():
    with pytest.raises(ValueError, match="max_ramp_fraction"):
        ShortRunSafeInverseSqrtScheduler(**ARGS, max_ramp_fraction=0.0)


@pytest.mark.parametrize("config", ["vessel_segmentation", "cass", "stenosis", "study"])
def test_every_learning_rate_group_of_every_phase_uses_it(config):
    cfg = finalize(compose(config, ["model.name=sam3_tiny"]))
    groups = cfg.scratch.lr_groups
    assert groups, config
    for name, group in groups.items():
        assert group.scheduler._target_ == "sam3_angio.training.schedulers.ShortRunSafeInverseSqrtScheduler", name
