"""The loss terms a config composes (``scratch.loss_terms``): SAM3's matcher losses with this
project's recipe as their defaults, and the base class for terms on our own model outputs.

Each term says which group it belongs to (``boxes``, ``classification``, ``segmentation``), so the
loss that composes them (``AngioLoss``) can weight groups - the study's 0.3/0.5/0.2 - without a table
of SAM3's key names. The defaults here are the one place the recipe lives; YAML names the terms and
overrides only what a phase changes.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from sam3.train.loss.loss_fns import (Boxes, IABCEMdetr, Masks, SemanticSegCriterion,
                                      instance_masks_to_semantic_masks)

from sam3_angio.registry import LOSSES

GROUPS = ("boxes", "classification", "segmentation")


class OutputTerm(nn.Module):
    """A loss on outputs our model adds to SAM3's (the CASS head, regression heads).

    ``losses(last)`` reads the last stage's output dict and returns unweighted scalar terms by name;
    ``AngioLoss`` adds ``weight x group factor x value`` of each to the core loss."""

    group: str = "classification"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = float(weight)

    def losses(self, last: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError


@LOSSES.register()
class BoxLoss(Boxes):
    """SAM3's L1 + GIoU box loss on matched queries (weights 5 / 2, SAM3's fine-tuning recipe)."""

    group = "boxes"

    def __init__(self, bbox_weight: float = 5.0, giou_weight: float = 2.0, compute_aux: bool = True):
        super().__init__(weight_dict={"loss_bbox": bbox_weight, "loss_giou": giou_weight}, compute_aux=compute_aux)


@LOSSES.register()
class PresenceLoss(IABCEMdetr):
    """SAM3's classification + presence-token loss ("is this phrase in the image"), presence weight 20
    as in SAM3's fine-tuning recipe. ``weak_loss`` drops the negative term of non-exhaustive queries
    (``data.labels_exhaustive=false``); with exhaustive labels it changes nothing."""

    group = "classification"

    def __init__(self, ce_weight: float = 20.0, presence_weight: float = 20.0, pos_weight: float = 10.0,
                 weak_loss: bool = True, alpha: float = 0.25, gamma: float = 2.0, pos_focal: bool = False,
                 pad_n_queries: Optional[int] = 200, pad_scale_pos: float = 1.0, **kwargs):
        kwargs.setdefault("use_presence", True)
        super().__init__(pos_weight=pos_weight, weight_dict={"loss_ce": ce_weight, "presence_loss": presence_weight},
                         weak_loss=weak_loss, alpha=alpha, gamma=gamma, pos_focal=pos_focal,
                         pad_n_queries=pad_n_queries, pad_scale_pos=pad_scale_pos, **kwargs)


@LOSSES.register()
class MaskLoss(Masks):
    """SAM3's per-instance mask focal + dice loss on matched queries (weights 200 / 10)."""

    group = "segmentation"

    def __init__(self, mask_weight: float = 200.0, dice_weight: float = 10.0, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, compute_aux: bool = False, **kwargs):
        super().__init__(weight_dict={"loss_mask": mask_weight, "loss_dice": dice_weight}, compute_aux=compute_aux,
                         focal_alpha=focal_alpha, focal_gamma=focal_gamma, **kwargs)


@LOSSES.register()
class SemanticFocalLoss(SemanticSegCriterion):
    """Semantic-segmentation focal loss with dice (alpha 0.6, gamma 1.6 as the study used) on SAM3's
    semantic head. Also what gives that head a gradient (without it DDP stops at step 2).

    Fractionary labels: when the model marks known pixels (``semantic_known`` (Q, H, W), set for the
    queries of partly labelled frames), the focal and dice terms are computed on known pixels only, so an
    unknown pixel gives no loss and no gradient. Frames that are fully labelled go through SAM3's own loss."""

    group = "segmentation"

    def __init__(self, seg_weight: float = 20.0, dice_weight: float = 30.0, presence_weight: float = 1.0,
                 focal_alpha: float = 0.6, focal_gamma: float = 1.6, presence_head: bool = True,
                 presence_loss: bool = False, downsample: bool = False):
        super().__init__(weight_dict={"loss_semantic_seg": seg_weight, "loss_semantic_presence": presence_weight,
                                      "loss_semantic_dice": dice_weight},
                         focal=True, focal_alpha=focal_alpha, focal_gamma=focal_gamma, downsample=downsample,
                         presence_head=presence_head, presence_loss=presence_loss)

    def get_loss(self, out_dict, targets):
        known = out_dict.get("semantic_known")
        if known is None:
            return super().get_loss(out_dict, targets)
        return self._masked_loss(out_dict, targets, known)

    def _masked_loss(self, out_dict, targets, known: torch.Tensor) -> Dict[str, torch.Tensor]:
        """SAM3's semantic loss (focal + dice, presence-masked) restricted to known pixels."""
        outputs = out_dict["semantic_seg"]  # (Q, 1, h, w)
        sem = targets.get("semantic_masks")
        if sem is None or sem.size(0) == 0:
            sem = instance_masks_to_semantic_masks(targets["masks"].bool(), targets["num_boxes"])
        size = sem.shape[-2:]
        logits = F.interpolate(outputs.float(), size=size, mode="bilinear", align_corners=False).squeeze(1)
        k = known.to(logits.device)
        if k.shape[-2:] != size:
            k = F.interpolate(k.float()[:, None], size=size, mode="nearest")[:, 0] > 0.5
        k = k.float().flatten(1)
        x, t = logits.flatten(1), sem.float().flatten(1)
        p = x.sigmoid()
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        focal = ce * (1 - p_t) ** self.focal_gamma
        if self.focal_alpha >= 0:
            focal = (self.focal_alpha * t + (1 - self.focal_alpha) * (1 - t)) * focal
        n_known = k.sum(1).clamp(min=1.0)
        loss = (focal * k).sum(1) / n_known if self.focal else (ce * k).sum(1) / n_known
        pk, tk = p * k, t * k
        dice = 1 - (2 * (pk * tk).sum(1) + 1) / (pk.sum(1) + tk.sum(1) + 1)
        present = t.any(1)
        n_valid = present.sum().item()
        if self.presence_head:
            loss = (loss * present.float()).sum() / (n_valid + 1e-6)
            dice = (dice * present.float()).sum() / (n_valid + 1e-6)
        else:
            loss, dice = loss.mean(), dice.mean()
        zero = torch.zeros((), device=logits.device)
        presence = zero
        if self.presence_head and self.presence_loss:
            presence = F.binary_cross_entropy_with_logits(out_dict["presence_logit"].flatten(), present.float())
        with torch.no_grad():
            pred = (p > 0.5) & (k > 0)
            inter = (pred & (t > 0)).sum(1).float()
            union = (pred | ((t > 0) & (k > 0))).sum(1).float()
            miou = (inter / union.clamp(min=1)).mean()
        return {"loss_semantic_seg": loss, "loss_semantic_dice": dice, "loss_semantic_presence": presence,
                "presence_acc": zero, "miou_semantic_seg": miou}
