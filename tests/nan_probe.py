"""A loss term for tests of the NaN guard: NaN on chosen calls (0-based, counted in this process)."""

from __future__ import annotations

from typing import Dict, Sequence

import torch

from sam3_angio.losses.terms import OutputTerm


class NanProbe(OutputTerm):
    group = "classification"

    def __init__(self, bad_calls: Sequence[int] = (), always: bool = False, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.bad_calls, self.always, self.calls = set(bad_calls), always, 0

    def losses(self, last: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        bad = self.always or (torch.is_grad_enabled() and self.calls in self.bad_calls)
        if torch.is_grad_enabled():
            self.calls += 1
        ref = next(v for v in last.values() if isinstance(v, torch.Tensor))
        return {"nan_probe": ref.new_tensor(float("nan") if bad else 0.0)}
