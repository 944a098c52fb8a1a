"""Smooth-L1 loss of the regression head (``qca_pred``) against the measured values of the target
regions (``qca_targets``): % diameter stenosis, MLD and reference diameter, each logged under its own
name (``loss_stenosis_pct``, ``loss_mld``, ``loss_reference_diameter``).

Both are (N, 3) normalised by the head (stenosis % / 100, diameters in mm). A target that is NaN (an
annotation without that value: ARCADE, a healthy segment) adds nothing; with none measured in the
batch each term is an exact zero that keeps the graph (DDP).
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from sam3_angio.errors import ConfigError
from sam3_angio.losses.terms import GROUPS, OutputTerm
from sam3_angio.registry import LOSSES

TERM_NAMES = ("loss_stenosis_pct", "loss_mld", "loss_reference_diameter")


@LOSSES.register()
class QCARegressionLoss(OutputTerm):
    """Smooth-L1 (``beta`` in normalised units) on each measured value, mean over the regions that have
    it. ``group``: the loss group whose weight scales it (default ``boxes``: like the box L1, a
    regression of geometry)."""

    def __init__(self, weight: float = 1.0, beta: float = 0.1, group: str = "boxes"):
        super().__init__(weight)
        if group not in GROUPS:
            raise ConfigError(f"QCARegressionLoss group={group!r}: expected one of {list(GROUPS)}")
        if beta <= 0:
            raise ConfigError(f"QCARegressionLoss beta={beta}: expected a positive number")
        self.group = group
        self.beta = float(beta)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        """pred, target (N, 3) -> {term name: scalar}."""
        out = {}
        for j, name in enumerate(TERM_NAMES):
            t = target[:, j]
            keep = torch.isfinite(t)
            if keep.any():
                out[name] = F.smooth_l1_loss(pred[keep, j], t[keep].to(pred.dtype), beta=self.beta)
            else:
                out[name] = pred[:, j].sum() * 0.0
        return out

    def losses(self, last: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if "qca_pred" not in last:
            raise ConfigError(
                "the loss has a QCA regression term but the model produced no 'qca_pred': give the "
                "ViewConditionedSam3 model a regression head (model.regression_head: {name: qca_mlp})")
        return self(last["qca_pred"], last["qca_targets"])
