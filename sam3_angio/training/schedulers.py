"""Learning-rate schedule of every lr group: SAM3's own, made safe for short runs.

SAM3's ``InverseSquareRootParamScheduler`` (linear warm-up, inverse-square-root decay, linear cooldown
over the last ``cooldown_steps``) assumes a run much longer than warm-up + cooldown. Shorter runs - a
demo's phase 2 of 8 steps, a smoke test, ``limit_train_images`` on a small set - break it in two ways
(read from sam3/train/optim/schedulers.py): a run of exactly ``warmup_steps`` steps divides by zero, and
a run shorter than warm-up + cooldown never leaves both ramps, so it trains at a few per cent of its
learning rate (8 steps with warm-up 20 and cooldown 40 peak at 0.04 x the base rate). This subclass
shrinks both ramps in proportion when they do not fit in the run (together at most ``max_ramp_fraction``
of it) and is SAM3's schedule unchanged otherwise.
"""

from __future__ import annotations

from sam3.train.optim.schedulers import InverseSquareRootParamScheduler


class ShortRunSafeInverseSqrtScheduler(InverseSquareRootParamScheduler):
    """``InverseSquareRootParamScheduler`` whose warm-up and cooldown fit the run (see the module)."""

    def __init__(self, base_lr: float, warmup_steps: int, cooldown_steps: int, timescale: int,
                 max_ramp_fraction: float = 0.5):
        if not 0.0 < max_ramp_fraction <= 1.0:
            raise ValueError(f"max_ramp_fraction must be in (0, 1], got {max_ramp_fraction}")
        super().__init__(base_lr=base_lr, warmup_steps=warmup_steps, cooldown_steps=cooldown_steps,
                         timescale=timescale)
        self.max_ramp_fraction = float(max_ramp_fraction)

    def ramps(self, total_steps: float):
        """(warm-up, cooldown) in steps for a run of ``total_steps``."""
        warm, cool = float(self.warmup_steps), float(self.cooldown_steps)
        budget = self.max_ramp_fraction * total_steps
        if warm + cool > budget * (1 + 1e-9) and budget > 0:  # (total is step / where: float rounding)
            scale = budget / (warm + cool)
            warm, cool = warm * scale, cool * scale
        return warm, cool

    def __call__(self, step: int, where: float) -> float:
        if where <= 0:  # the first step (SAM3 starts it at 0 under a warm-up)
            return super().__call__(step=step, where=where)
        warm, cool = self.ramps(step / where)
        if (warm, cool) == (self.warmup_steps, self.cooldown_steps):
            return super().__call__(step=step, where=where)
        # SAM3's formula with the fitted ramps (it takes fractional steps as they are)
        return InverseSquareRootParamScheduler(self.base_lr, warm, cool, self.timescale)(step=step, where=where)
