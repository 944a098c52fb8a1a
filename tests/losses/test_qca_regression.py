"""The regression heads (stenosis %, MLD, reference diameter per region) and their smooth-L1 loss, as
stenosis.yaml builds them: values reach the batch paired with their own annotation, the loss terms
are finite, logged under their own names, reach the head's weights, and are zero for annotations
without values; phase 3 trains through tools/train.py and logs them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import run_train, small_run_overrides
from model_fixtures import make_batches, last_step

NAMES = ("loss_stenosis_pct", "loss_mld", "loss_reference_diameter")


def _stenosis_cfg(data_root):
    from sam3_angio.config import compose, finalize

    cfg = finalize(compose("stenosis", [f"paths.data_root={data_root}", "model.name=sam3_tiny",
                                        "data.demo.generate_if_missing=false"]))
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


@pytest.fixture(scope="module")
def stenosis_parts(tiny_data_root):
    cfg = _stenosis_cfg(tiny_data_root)
    torch.manual_seed(0)
    model = instantiate(cfg.trainer.model, _convert_="all").train()
    loss = instantiate(cfg.scratch.angio_loss)
    batch = make_batches(tiny_data_root, "stenosis", split="val")[0]  # no augmentation: fixed order
    return model, loss, batch


def test_measured_values_reach_the_batch_paired_with_their_annotation(tiny_data_root, stenosis_parts):
    _, _, batch = stenosis_parts
    coco = json.loads((tiny_data_root / "coco_stenosis" / "val" / "annotations.json").read_text())
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    num = batch.find_targets[0].num_boxes
    image_of_target = torch.repeat_interleave(torch.as_tensor(batch.find_metadatas[0].original_image_id).view(-1), num)
    assert batch.qca_targets.shape == (int(num.sum()), 3)
    seen_measured = seen_missing = 0
    for row, image_id in zip(batch.qca_targets.tolist(), image_of_target.tolist()):
        (ann,) = by_image[image_id]  # one stenosis a frame in the tiny set
        if "stenosis_pct" in ann:
            assert row == pytest.approx([ann["stenosis_pct"], ann["mld_mm"], ann["reference_diameter_mm"]])
            seen_measured += 1
        else:
            assert all(math.isnan(v) for v in row)
            seen_missing += 1
    assert seen_measured and seen_missing  # the tiny val split has one of each


def test_config_composes_the_head_and_the_term_under_their_names(stenosis_parts):
    model, loss, _ = stenosis_parts
    assert model.cass_head is None and type(model.regression_head).__name__ == "QCARegressionHead"
    assert list(loss.own_terms) == ["qca_regression"]


def test_losses_are_finite_named_and_reach_the_head(stenosis_parts, single_rank_group):
    model, loss, batch = stenosis_parts
    model.zero_grad()
    outputs = model(batch)
    targets = [model.back_convert(t) for t in batch.find_targets]
    losses = loss(outputs, targets)
    for name in NAMES:
        assert name in losses and torch.isfinite(losses[name]) and losses[name] > 0, name
    # each term is smooth L1 over the measured rows only (stenosis % / 100, mm)
    last = last_step(outputs)
    keep = torch.isfinite(last["qca_targets"][:, 0])
    expected = torch.nn.functional.smooth_l1_loss(last["qca_pred"][keep, 1], last["qca_targets"][keep, 1], beta=0.1)
    assert losses["loss_mld"].item() == pytest.approx(expected.item(), rel=1e-5)
    losses["core_loss"].backward()
    grad = model.regression_head.mlp[-1].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_annotations_without_values_add_exactly_nothing(stenosis_parts):
    from sam3_angio.losses import QCARegressionLoss

    model, _, batch = stenosis_parts
    model.zero_grad()
    last = last_step(model(batch))
    term = QCARegressionLoss()
    nothing = term(last["qca_pred"], torch.full_like(last["qca_targets"], float("nan")))
    assert set(nothing) == set(NAMES) and all(v.item() == 0.0 for v in nothing.values())
    sum(nothing.values()).backward()  # keeps the graph (DDP), gives no gradient
    grad = model.regression_head.mlp[-1].weight.grad
    assert grad is not None and grad.abs().sum() == 0
    # one measured row among unmeasured ones: only that row counts
    t = torch.full_like(last["qca_targets"], float("nan"))
    t[0] = torch.tensor([0.5, 1.0, 2.0])
    one = term(last["qca_pred"].detach(), t)
    assert one["loss_reference_diameter"].item() == pytest.approx(
        torch.nn.functional.smooth_l1_loss(last["qca_pred"][0, 2].detach(), torch.tensor(2.0), beta=0.1).item())


def test_a_model_without_a_regression_head_is_a_config_error(tiny_sam3, cass_batch):
    from model_fixtures import wrapper

    from sam3_angio.errors import ConfigError
    from sam3_angio.losses import QCARegressionLoss

    last = last_step(wrapper(tiny_sam3)(cass_batch))
    with pytest.raises(ConfigError, match="regression head"):
        QCARegressionLoss().losses(last)


def test_phase3_trains_through_tools_train_and_logs_each_term(tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    run_train(["-c", "configs/angiography/stenosis.yaml", *small_run_overrides(tiny_data_root, exp, epochs=1)],
              check=True)
    stats = [json.loads(ln) for ln in (exp / "logs" / "train_stats.json").read_text().splitlines() if ln.strip()]
    for name in NAMES:
        assert math.isfinite(stats[-1][f"Losses/train_all_{name}"]), name
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("regression_head.") for k in ckpt["model"])
    # validation scores the head on the measured val regions (one of the two tiny val stenoses)
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["qca_head.n_regions"] == 1
    for key in ("qca_head.mae_stenosis_pct", "qca_head.mae_mld_mm", "qca_head.mae_reference_diameter_mm"):
        assert math.isfinite(metrics[key]) and metrics[key] >= 0, key
