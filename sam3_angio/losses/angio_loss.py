"""One loss for the view-conditioned model: SAM3's matcher losses (boxes, GIoU, classification and
presence, masks, semantic segmentation) plus the CASS cross-entropy, each logged under its own name.

``group_weights`` rescales SAM3's terms by group relative to equal weighting; the study's phase 2
weighting is ``{segmentation: 0.3, classification: 0.5, boxes: 0.2}`` (classification also scales the
CASS cross-entropy).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

import torch
import torch.nn as nn
from sam3.train.loss.loss_fns import CORE_LOSS_KEY

from sam3_angio.registry import LOSSES

GROUPS = {
    "boxes": ("loss_bbox", "loss_giou"),
    "classification": ("loss_ce", "presence_loss"),
    "segmentation": ("loss_mask", "loss_dice", "loss_semantic_seg", "loss_semantic_presence",
                     "loss_semantic_dice"),
}
STUDY_PHASE2 = {"segmentation": 0.3, "classification": 0.5, "boxes": 0.2}


def group_factors(group_weights: Optional[Dict[str, float]]) -> Dict[str, float]:
    """Group weights -> multipliers relative to equal weighting (1/3 each -> 1.0)."""
    if not group_weights:
        return {g: 1.0 for g in GROUPS}
    unknown = set(group_weights) - set(GROUPS)
    if unknown:
        raise ValueError(f"loss group_weights: unknown groups {sorted(unknown)}; expected {sorted(GROUPS)}")
    total = sum(float(group_weights.get(g, 0.0)) for g in GROUPS)
    if total <= 0:
        raise ValueError(f"loss group_weights {dict(group_weights)} sum to {total}: need a positive sum")
    return {g: float(group_weights.get(g, 0.0)) * len(GROUPS) / total for g in GROUPS}


@LOSSES.register()
class AngioLoss(nn.Module):
    """SAM3's ``Sam3LossWrapper`` + CASS cross-entropy, with optional group weighting."""

    def __init__(self, sam3_loss: nn.Module, cass_loss: Optional[nn.Module] = None, cass_weight: float = 1.0,
                 group_weights: Optional[Dict[str, float]] = None, trace_dir: Optional[str] = None):
        super().__init__()
        # trace_dir: each training step's losses, one JSON line a step in loss_trace_rank<r>.jsonl
        # (compare ranks of a DDP run, or a run with its reference).
        self.trace_dir = trace_dir
        self._trace_step = 0
        self.sam3_loss = sam3_loss
        self.cass_loss = cass_loss
        self.factors = group_factors(group_weights)
        self.cass_weight = float(cass_weight) * self.factors["classification"]
        fns = list(getattr(sam3_loss, "loss_fns_find", []))
        if getattr(sam3_loss, "loss_fn_semantic_seg", None) is not None:
            fns.append(sam3_loss.loss_fn_semantic_seg)
        for fn in fns:
            for key in list(fn.weight_dict):
                for group, keys in GROUPS.items():
                    if key in keys:
                        fn.weight_dict[key] = fn.weight_dict[key] * self.factors[group]

    def forward(self, find_stages, find_targets) -> Dict[str, torch.Tensor]:
        losses = self._forward(find_stages, find_targets)
        if self.trace_dir and torch.is_grad_enabled():
            self._trace(losses)
        return losses

    def _trace(self, losses: Dict[str, torch.Tensor]) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        os.makedirs(self.trace_dir, exist_ok=True)
        row = {"step": self._trace_step, "rank": rank}
        row.update({k: float(v) for k, v in losses.items() if torch.as_tensor(v).numel() == 1})
        with open(os.path.join(self.trace_dir, f"loss_trace_rank{rank}.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        self._trace_step += 1

    def _forward(self, find_stages, find_targets) -> Dict[str, torch.Tensor]:
        losses = self.sam3_loss(find_stages, find_targets)
        if self.cass_loss is None:
            return losses
        stages = find_stages.output if hasattr(find_stages, "output") else find_stages
        last = stages[-1][-1]
        if "cass_logits" not in last:
            raise KeyError(
                "AngioLoss has a cass_loss but the model produced no 'cass_logits': use the "
                "ViewConditionedSam3 model (sam3_angio.model.view_conditioned.build_view_conditioned)"
            )
        ce = self.cass_loss(last["cass_logits"], last["cass_targets"])
        losses["loss_cass_ce"] = ce
        with torch.no_grad():
            keep = last["cass_targets"] >= 0
            acc = (last["cass_logits"][keep].argmax(1) == last["cass_targets"][keep]).float().mean() \
                if keep.any() else ce.new_tensor(0.0)
        losses["cass_acc"] = acc
        losses[CORE_LOSS_KEY] = losses[CORE_LOSS_KEY] + self.cass_weight * ce
        return losses
