"""SAM3's own loss terms with the defaults this project uses, registered so configs and ``--list``
name them: the presence-token loss and the semantic-segmentation focal + dice loss."""

from __future__ import annotations

from sam3.train.loss.loss_fns import IABCEMdetr, SemanticSegCriterion

from sam3_angio.registry import LOSSES


@LOSSES.register()
class PresenceLoss(IABCEMdetr):
    """SAM3's classification + presence-token loss (binary cross-entropy on "is this phrase in the
    image"), presence weight 20 as in SAM3's fine-tuning recipe."""

    def __init__(self, weight_dict=None, pos_weight: float = 10.0, presence_weight: float = 20.0,
                 ce_weight: float = 20.0, **kwargs):
        kwargs.setdefault("weak_loss", False)
        kwargs.setdefault("alpha", 0.25)
        kwargs.setdefault("gamma", 2)
        kwargs.setdefault("use_presence", True)
        kwargs.setdefault("pos_focal", False)
        kwargs.setdefault("pad_n_queries", 200)
        kwargs.setdefault("pad_scale_pos", 1.0)
        if weight_dict is None:
            weight_dict = {"loss_ce": ce_weight, "presence_loss": presence_weight}
        super().__init__(pos_weight=pos_weight, weight_dict=weight_dict, **kwargs)


@LOSSES.register()
class SemanticFocalLoss(SemanticSegCriterion):
    """Semantic-segmentation focal loss with dice (alpha 0.6, gamma 1.6 as the study used), on SAM3's
    semantic head. Also what gives that head a gradient (without it DDP stops at step 2)."""

    def __init__(self, weight_dict=None, focal_alpha: float = 0.6, focal_gamma: float = 1.6,
                 seg_weight: float = 20.0, dice_weight: float = 30.0, presence_weight: float = 1.0, **kwargs):
        kwargs.setdefault("presence_head", True)
        kwargs.setdefault("presence_loss", False)
        kwargs.setdefault("downsample", False)
        if weight_dict is None:
            weight_dict = {"loss_semantic_seg": seg_weight, "loss_semantic_presence": presence_weight,
                           "loss_semantic_dice": dice_weight}
        super().__init__(weight_dict=weight_dict, focal=True, focal_alpha=focal_alpha,
                         focal_gamma=focal_gamma, **kwargs)
