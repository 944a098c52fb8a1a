"""The angiography losses in the configuration that trains (built from the composed phase configs):
each registered term is finite and reaches the weights it should, group weights rescale by the group
each term declares, and a third-party term plugs in by YAML alone."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from model_fixtures import wrapper as _wrapper


def _loss_from_config(task: str = "cass", overrides=()):
    """``scratch.angio_loss`` exactly as tools/train.py composes it for ``task``."""
    from sam3_angio.config import compose

    classes = ["model.class_ids=[1,2,12,13]"] if task == "cass" else []  # the classes of the tiny data set
    cfg = compose(task, ["model.name=sam3_tiny", *classes, *overrides])
    with_model = OmegaConf.merge(cfg, {"model": {"resolved": "sam3_tiny"}})
    node = OmegaConf.to_container(with_model.scratch.angio_loss, resolve=True)
    return instantiate(node)


def _step(tiny_sam3, batch):
    model = _wrapper(copy.deepcopy(tiny_sam3)).train()
    outputs = model(batch)
    return model, outputs, [model.back_convert(t) for t in batch.find_targets]


# Term name in the config -> a loss key it must produce, a parameter its gradient must reach.
TERMS = {
    "boxes": ("loss_bbox", "detector.transformer.decoder.bbox_embed.layers.2.weight"),
    "presence": ("presence_loss", "detector.transformer.decoder.presence_token.weight"),
    "masks": ("loss_mask", "detector.segmentation_head.mask_predictor.mask_embed.layers.0.weight"),
    "semantic": ("loss_semantic_seg", "detector.segmentation_head.semantic_seg_head.weight"),
    "cass_ce": ("loss_cass_ce", "cass_head.classifier.weight"),
}


@pytest.mark.parametrize("term", sorted(TERMS))
def test_each_configured_term_is_finite_and_reaches_its_weights(term, tiny_sam3, cass_batch, single_rank_group):
    others = [f"scratch.loss_terms.{t}=null" for t in TERMS if t != term]
    loss_fn = _loss_from_config("cass", others)
    model, outputs, targets = _step(tiny_sam3, cass_batch)
    key, watched = TERMS[term]
    losses = loss_fn(outputs, targets)
    assert torch.isfinite(torch.as_tensor(losses[key])), key
    losses["core_loss"].backward()
    grad = dict(model.named_parameters())[watched].grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("weights", [None, "{segmentation:0.3,classification:0.5,boxes:0.2}"])
def test_the_cass_config_loss_is_finite_with_every_term(weights, tiny_sam3, cass_batch, single_rank_group):
    loss_fn = _loss_from_config("cass", [f"scratch.loss_group_weights={weights}"] if weights else [])
    _, outputs, targets = _step(tiny_sam3, cass_batch)
    losses = loss_fn(outputs, targets)
    for key, _ in TERMS.values():
        assert key in losses and torch.isfinite(torch.as_tensor(losses[key])), key
    assert torch.isfinite(losses["core_loss"])


def test_study_group_weights_rescale_each_term_by_its_group():
    plain = _loss_from_config("cass")
    study = _loss_from_config("cass", ["scratch.loss_group_weights={segmentation:0.3,classification:0.5,boxes:0.2}"])
    by_type = lambda loss: {type(t).__name__: t for t in loss.sam3_loss.loss_fns_find}  # noqa: E731
    p, s = by_type(plain), by_type(study)
    assert s["BoxLoss"].weight_dict["loss_bbox"] == pytest.approx(p["BoxLoss"].weight_dict["loss_bbox"] * 0.6)
    assert s["PresenceLoss"].weight_dict["loss_ce"] == pytest.approx(p["PresenceLoss"].weight_dict["loss_ce"] * 1.5)
    assert s["MaskLoss"].weight_dict["loss_dice"] == pytest.approx(p["MaskLoss"].weight_dict["loss_dice"] * 0.9)
    assert study.sam3_loss.loss_fn_semantic_seg.weight_dict["loss_semantic_seg"] == pytest.approx(
        plain.sam3_loss.loss_fn_semantic_seg.weight_dict["loss_semantic_seg"] * 0.9)


def test_training_configs_use_the_registered_terms_with_weak_loss():
    for task in ("vessel_segmentation", "cass", "stenosis"):
        loss = _loss_from_config(task)
        names = sorted(type(t).__name__ for t in loss.sam3_loss.loss_fns_find)
        assert names == ["BoxLoss", "MaskLoss", "PresenceLoss"], task
        assert type(loss.sam3_loss.loss_fn_semantic_seg).__name__ == "SemanticFocalLoss"
        presence = next(t for t in loss.sam3_loss.loss_fns_find if type(t).__name__ == "PresenceLoss")
        assert presence.weak_loss is True  # labels_exhaustive=false must be able to drop negatives
    assert list(_loss_from_config("cass").own_terms) == ["cass_ce"]
    assert not _loss_from_config("vessel_segmentation").own_terms


def test_cass_ce_weights_follow_inverse_frequency():
    from sam3_angio.losses import CassCrossEntropy

    ce = CassCrossEntropy(class_ids=[1, 2], counts={1: 30, 2: 10})
    # N / (K n_c): 40 / (2 * 30), 40 / (2 * 10)
    assert torch.allclose(ce.class_weight, torch.tensor([40 / 60, 40 / 20]))


def test_a_term_without_a_known_group_is_a_config_error():
    from sam3_angio.errors import ConfigError
    from sam3_angio.losses import AngioLoss, OutputTerm

    class Ungrouped(OutputTerm):
        group = "style"

    with pytest.raises(ConfigError, match="declares group 'style'"):
        AngioLoss({"odd": Ungrouped()}, matcher=None)
