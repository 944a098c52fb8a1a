"""Training modes in the loss: per-mode terms and their mean; fractionary labels (unknown pixels and
unlabelled categories give no loss)."""

from __future__ import annotations

import copy

import torch

from model_fixtures import last_step as _last, loss_from_config as _loss_from_config, wrapper as _wrapper


def test_both_modes_give_per_mode_terms_and_their_mean(tiny_sam3, cass_batch, single_rank_group):
    loss_fn = _loss_from_config("cass")
    torch.manual_seed(0)
    model = _wrapper(copy.deepcopy(tiny_sam3), modes=["automatic", "proofread"]).train()
    outputs = model(cass_batch)
    assert set(outputs.mode_outputs) == {"automatic", "proofread"}
    targets = [model.back_convert(t) for t in cass_batch.find_targets]
    losses = loss_fn(outputs, targets)
    for mode in ("automatic", "proofread"):
        for term in ("loss_mask", "loss_semantic_seg", "presence_loss", "loss_cass_ce"):
            assert torch.isfinite(torch.as_tensor(losses[f"{mode}/{term}"])), (mode, term)
    each = [loss_fn.one_pass(outputs.mode_outputs[m], targets)["core_loss"] for m in ("automatic", "proofread")]
    assert torch.allclose(losses["core_loss"], (each[0] + each[1]) / 2, rtol=1e-4)
    losses["core_loss"].backward()
    grad = model.prompt_encoder.out.weight.grad  # only the proofread pass reaches the prompt encoder
    assert grad is not None and grad.abs().sum() > 0


def _partly_labelled(batch):
    """The batch with its first frame's queries marked non-exhaustive (its record's labels_exhaustive: false)."""
    batch = copy.deepcopy(batch)
    target, inputs = batch.find_targets[0], batch.find_inputs[0]
    target.is_exhaustive = (inputs.img_ids.long() != 0)
    return batch


def test_partly_labelled_frame_gives_no_semantic_loss_on_unknown_pixels(tiny_sam3, cass_batch, single_rank_group):
    from sam3_angio.losses import terms

    batch = _partly_labelled(cass_batch)
    model = _wrapper(copy.deepcopy(tiny_sam3)).train()
    last = _last(model(batch))
    known = last["semantic_known"]
    target, inputs = batch.find_targets[0], batch.find_inputs[0]
    q0 = inputs.img_ids.long() == 0
    assert known[~q0].all() and not known[q0].all()   # fully labelled frame: all known; frame 0: some unknown
    sem_loss = terms.SemanticFocalLoss()
    targets = model.back_convert(target)
    logits = last["semantic_seg"].detach().clone().requires_grad_(True)
    out = {"semantic_seg": logits, "presence_logit": last["presence_logit"], "semantic_known": known}
    loss = sem_loss(out, targets)["core_loss"]
    loss.backward()
    # Logits are upsampled (bilinear) to the target size: a low-res logit cell whose footprint and
    # neighbours are all unknown pixels gets no gradient.
    F = torch.nn.functional
    up = F.interpolate(known.float()[:, None], size=logits.shape[-2:], mode="area")
    unknown_cells = (F.max_pool2d(up, 3, stride=1, padding=1)[:, 0] == 0) & q0[:, None, None]
    assert unknown_cells.any()
    assert logits.grad[:, 0][unknown_cells].abs().max() == 0
    # ... and changing the logits there changes nothing.
    moved = logits.detach().clone()
    moved[:, 0][unknown_cells] += 5.0
    again = sem_loss({**out, "semantic_seg": moved}, targets)["core_loss"]
    assert torch.allclose(loss.detach(), again, atol=1e-6)
    # Fully labelled batch: no known mask, SAM3's own loss.
    assert "semantic_known" not in _last(model(cass_batch))


def test_unlabelled_categories_of_a_partly_labelled_frame_give_no_negative_query_loss(
        tiny_sam3, cass_batch, single_rank_group):
    loss_fn = _loss_from_config("cass")
    model = _wrapper(copy.deepcopy(tiny_sam3)).train()
    batch = _partly_labelled(cass_batch)
    outputs = model(batch)
    targets = [model.back_convert(t) for t in batch.find_targets]
    last = _last(outputs)
    target, inputs = batch.find_targets[0], batch.find_inputs[0]
    absent = (inputs.img_ids.long() == 0) & (target.num_boxes.long() == 0)  # unlabelled categories of frame 0
    assert absent.any()
    logits = last["pred_logits"]
    base = loss_fn(outputs, targets)["loss_ce"]
    with torch.no_grad():
        logits[absent] += 3.0  # "present" everywhere for those queries: no negative signal, no change
    assert torch.allclose(loss_fn(outputs, targets)["loss_ce"], base, atol=1e-5)
