"""Cross-entropy on the CASS head, with class weights for the study's heavy imbalance.

cass_logits (N, K), cass_targets (N,) class index or -1 (a segment outside the class set: ignored).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from sam3_angio.cass import class_ids as validate_class_ids
from sam3_angio.cass import inverse_frequency_weights
from sam3_angio.errors import ConfigError
from sam3_angio.losses.terms import OutputTerm
from sam3_angio.registry import LOSSES


@LOSSES.register()
class CassCrossEntropy(OutputTerm):
    """Weighted, optionally label-smoothed cross-entropy over the configured CASS classes (``loss_cass_ce``).

    ``class_weights``: "inverse_frequency" (from ``counts``, default the study's counts), "none", or a
    list of K weights."""

    group = "classification"

    def __init__(self, class_ids: Optional[Sequence[int]] = None,
                 class_weights: Union[str, Sequence[float]] = "inverse_frequency",
                 counts: Optional[Dict[int, int]] = None, label_smoothing: float = 0.0, weight: float = 1.0):
        super().__init__(weight)
        ids = validate_class_ids(class_ids)
        if isinstance(class_weights, str):
            if class_weights == "inverse_frequency":
                w = inverse_frequency_weights(ids, {int(k): v for k, v in counts.items()} if counts else None)
            elif class_weights == "none":
                w = [1.0] * len(ids)
            else:
                raise ConfigError(f"cass loss class_weights={class_weights!r}: expected 'inverse_frequency', "
                                  f"'none' or a list of {len(ids)} weights")
        else:
            w = [float(x) for x in class_weights]
            if len(w) != len(ids):
                raise ConfigError(f"cass loss class_weights has {len(w)} values for {len(ids)} CASS classes")
        self.register_buffer("class_weight", torch.tensor(w, dtype=torch.float32))
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        keep = targets >= 0
        if not keep.any():
            return logits.sum() * 0.0  # keeps the graph (DDP) with no CASS-labelled segment
        return F.cross_entropy(logits[keep], targets[keep], weight=self.class_weight.to(logits.device),
                               label_smoothing=self.label_smoothing)

    def losses(self, last: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if "cass_logits" not in last:
            raise ConfigError(
                "the loss has a CASS cross-entropy term but the model produced no 'cass_logits': use the "
                "ViewConditionedSam3 model (sam3_angio.model.view_conditioned.build_view_conditioned)"
            )
        return {"loss_cass_ce": self(last["cass_logits"], last["cass_targets"])}
