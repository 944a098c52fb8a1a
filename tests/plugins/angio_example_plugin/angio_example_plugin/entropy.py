"""A loss term on the CASS head: penalise confident naming of regions (an entropy bonus)."""

import torch

from sam3_angio.losses import OutputTerm
from sam3_angio.registry import LOSSES


@LOSSES.register()
class CassEntropyPenalty(OutputTerm):
    """``loss_cass_entropy`` = minus the mean entropy of the CASS head's distribution (weight from YAML)."""

    group = "classification"

    def losses(self, last):
        p = last["cass_logits"].softmax(dim=1)
        entropy = -(p * p.clamp_min(1e-8).log()).sum(dim=1)
        return {"loss_cass_entropy": -entropy.mean() if entropy.numel() else p.sum() * 0.0}
