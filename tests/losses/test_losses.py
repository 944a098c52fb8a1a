"""The angiography losses in the configuration that trains: finite, with gradients, weighted."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate

from model_fixtures import last_step as _last, wrapper as _wrapper


def _train_step_outputs(tiny_sam3, batch):
    model = _wrapper(copy.deepcopy(tiny_sam3)).train()
    return model, model(batch)


def _sam3_loss():
    from sam3_angio.training.config import compose
    from omegaconf import OmegaConf

    cfg = compose("cass")
    node = OmegaConf.to_container(cfg.scratch.sam3_loss, resolve=True)
    return instantiate(node)


@pytest.mark.parametrize("which", ["presence", "semantic", "cass", "combined", "combined_study_weights"])
def test_each_loss_is_finite_and_has_a_gradient(which, tiny_sam3, cass_batch, single_rank_group):
    from sam3_angio.losses import AngioLoss, CassCrossEntropy, PresenceLoss, SemanticFocalLoss

    model, outputs = _train_step_outputs(tiny_sam3, cass_batch)
    targets = [model.back_convert(t) for t in cass_batch.find_targets]
    last = _last(outputs)
    if which == "cass":
        loss = CassCrossEntropy(class_ids=[1, 2, 12, 13], counts={1: 5, 2: 1, 12: 3, 13: 2},
                                label_smoothing=0.1)(last["cass_logits"], last["cass_targets"])
        watched = "cass_head.classifier.weight"
    elif which in ("presence", "semantic"):
        sam3 = _sam3_loss()
        sam3.loss_fns_find = torch.nn.ModuleList([PresenceLoss()]) if which == "presence" else torch.nn.ModuleList()
        if which == "semantic":
            sam3.loss_fn_semantic_seg = SemanticFocalLoss()
        losses = sam3(outputs, targets)
        key = "presence_loss" if which == "presence" else "loss_semantic_seg"
        assert torch.isfinite(losses[key])
        loss = losses["core_loss"]
        watched = ("detector.transformer.decoder.presence_token.weight" if which == "presence"
                   else "detector.segmentation_head.semantic_seg_head.weight")
    else:
        weights = {"segmentation": 0.3, "classification": 0.5, "boxes": 0.2} if which.endswith("weights") else None
        combined = AngioLoss(_sam3_loss(), CassCrossEntropy(class_ids=[1, 2, 12, 13]), group_weights=weights)
        losses = combined(outputs, targets)
        for key in ("loss_bbox", "loss_giou", "loss_ce", "presence_loss", "loss_mask", "loss_dice",
                    "loss_semantic_seg", "loss_cass_ce"):
            assert key in losses and torch.isfinite(torch.as_tensor(losses[key])), key
        loss = losses["core_loss"]
        watched = "cass_head.classifier.weight"
    assert torch.isfinite(loss)
    loss.backward()
    grad = dict(model.named_parameters())[watched].grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_study_group_weights_rescale_sam3_terms():
    from sam3_angio.losses import AngioLoss

    plain, study = _sam3_loss(), _sam3_loss()
    AngioLoss(study, None, group_weights={"segmentation": 0.3, "classification": 0.5, "boxes": 0.2})
    box_plain = plain.loss_fns_find[0].weight_dict["loss_bbox"]
    assert study.loss_fns_find[0].weight_dict["loss_bbox"] == pytest.approx(box_plain * 0.6)
    assert study.loss_fns_find[1].weight_dict["loss_ce"] == pytest.approx(plain.loss_fns_find[1].weight_dict["loss_ce"] * 1.5)


def test_cass_ce_weights_follow_inverse_frequency():
    from sam3_angio.losses import CassCrossEntropy

    ce = CassCrossEntropy(class_ids=[1, 2], counts={1: 30, 2: 10})
    # N / (K n_c): 40 / (2 * 30), 40 / (2 * 10)
    assert torch.allclose(ce.weight, torch.tensor([40 / 60, 40 / 20]))


