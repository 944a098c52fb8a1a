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
from sam3.train.loss.loss_fns import Boxes, IABCEMdetr, Masks, SemanticSegCriterion

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
    semantic head. Also what gives that head a gradient (without it DDP stops at step 2)."""

    group = "segmentation"

    def __init__(self, seg_weight: float = 20.0, dice_weight: float = 30.0, presence_weight: float = 1.0,
                 focal_alpha: float = 0.6, focal_gamma: float = 1.6, presence_head: bool = True,
                 presence_loss: bool = False, downsample: bool = False):
        super().__init__(weight_dict={"loss_semantic_seg": seg_weight, "loss_semantic_presence": presence_weight,
                                      "loss_semantic_dice": dice_weight},
                         focal=True, focal_alpha=focal_alpha, focal_gamma=focal_gamma, downsample=downsample,
                         presence_head=presence_head, presence_loss=presence_loss)
