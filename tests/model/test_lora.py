"""LoRA through peft (sam3_angio/model/lora.py): which modules it wraps, what trains, loading plain
SAM3 / phase 1 weights into a LoRA model, and merging for inference."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from model_fixtures import last_step as _last, wrapper as _wrapper
from sam3_angio.errors import ConfigError
from sam3_angio.model.lora import TARGET_GROUPS, apply_lora, merge_lora, resolve_targets

ALL = {"enabled": True, "r": 4, "alpha": 8, "targets": list(TARGET_GROUPS)}
OURS = ("view_encoder.", "film.", "cass_head.")


def _lora_wrapper(tiny_sam3, lora=ALL):
    model = _wrapper(copy.deepcopy(tiny_sam3))
    apply_lora(model.detector, lora)
    return model


def test_groups_resolve_to_the_attention_modules_of_the_tiny_model(tiny_sam3):
    names = resolve_targets(tiny_sam3, list(TARGET_GROUPS))
    assert "backbone.vision_backbone.trunk.blocks.0.attn.qkv" in names
    assert "backbone.vision_backbone.trunk.blocks.1.attn.proj" in names
    assert "transformer.encoder.layers.0.cross_attn_image" in names
    assert "transformer.decoder.layers.0.self_attn" in names
    assert "transformer.decoder.layers.0.ca_text" in names
    assert "backbone.language_backbone.encoder.transformer.resblocks.1.attn" in names
    # MLPs, heads and the geometry encoder are never targets.
    assert not [n for n in names if "mlp" in n or "geometry_encoder" in n or "segmentation_head" in n]
    assert resolve_targets(tiny_sam3, ["vision_trunk"]) == [n for n in names if ".trunk." in n]


def test_a_misspelt_group_is_an_error_naming_the_groups(tiny_sam3):
    with pytest.raises(ConfigError) as err:
        apply_lora(copy.deepcopy(tiny_sam3), {"enabled": True, "targets": ["vision_trunc"]})
    msg = str(err.value)
    assert "vision_trunc" in msg and all(g in msg for g in TARGET_GROUPS)
    with pytest.raises(ConfigError, match="rnk"):
        apply_lora(copy.deepcopy(tiny_sam3), {"enabled": True, "rnk": 4})


def test_only_lora_matrices_and_our_heads_get_gradients(tiny_sam3, cass_batch):
    model = _lora_wrapper(tiny_sam3)
    wrapped = set(model.detector._angio_lora["modules"])
    assert wrapped == set(resolve_targets(tiny_sam3, list(TARGET_GROUPS)))
    lora_params = {n for n, _ in model.named_parameters() if "lora_" in n}
    # Every wrapped module carries A and B, nothing else does.
    owners = {n.split(".lora_")[0].replace(".base_layer", "").removeprefix("detector.") for n in lora_params}
    assert owners == wrapped
    out = _last(model(cass_batch))
    (out["pred_logits"].sum() + out["pred_masks"].float().mean() + out["cass_logits"].sum()).backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad <= trainable
    assert trainable == lora_params | {n for n, _ in model.named_parameters() if n.startswith(OURS)}
    assert lora_params <= with_grad
    assert {n for n in with_grad if n.startswith(OURS)}, "our heads get gradients"
    n_trainable = sum(p.numel() for n, p in model.named_parameters() if n in trainable)
    assert n_trainable < 0.2 * sum(p.numel() for p in model.parameters())


def test_trainable_keeps_named_sam3_modules_trainable(tiny_sam3):
    model = _lora_wrapper(tiny_sam3, {**ALL, "targets": ["vision_trunk"], "trainable": ["segmentation_head."]})
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("detector.segmentation_head.") for n in names)
    assert not any(n.startswith("detector.transformer.") for n in names)


def test_phase1_weights_load_under_the_lora_base_layers(tiny_sam3, tmp_path, capsys):
    from sam3_angio.model.init import load_phase1
    from sam3_angio.model.tiny import build_sam3_tiny

    phase1 = build_sam3_tiny(seed=11)
    ckpt = tmp_path / "phase1.pt"
    torch.save({"model": {f"module.{k}": v for k, v in phase1.state_dict().items()}}, ckpt)
    model = _lora_wrapper(tiny_sam3)
    load_phase1(model, str(ckpt), require=True)
    shown = capsys.readouterr().out  # the new adapters are said as such, not counted as missing weights
    n_lora = sum("lora_" in k for k in model.detector.state_dict())
    assert "missing 0," in shown and "missing by module" not in shown
    assert f"new LoRA adapter tensors (model.lora, not in the phase 1 checkpoint, trained from their start): " \
           f"{n_lora}" in shown
    own = model.detector.state_dict()
    for k, v in phase1.state_dict().items():
        mk = k if k in own else {kk.replace(".base_layer.", "."): kk for kk in own}[k]
        assert torch.equal(own[mk], v), k


def test_merged_outputs_equal_unmerged_and_keys_are_plain_sam3_again(tiny_sam3, cass_batch):
    model = _lora_wrapper(tiny_sam3).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)  # a trained adapter: B != 0, so LoRA changes the outputs
        a = _last(model(cass_batch))
        base = _last(_wrapper(copy.deepcopy(tiny_sam3)).eval()(cass_batch))
        assert not torch.allclose(a["pred_logits"], base["pred_logits"], atol=1e-4)
        merge_lora(model)
        b = _last(model(cass_batch))
    assert not any("lora_" in k or "base_layer" in k for k in model.state_dict())
    assert set(model.detector.state_dict()) == set(tiny_sam3.state_dict())
    for key in ("pred_logits", "pred_boxes", "pred_masks", "cass_logits"):
        assert torch.allclose(a[key], b[key], atol=1e-4), key


def test_adapter_file_round_trips_onto_the_base_weights(tiny_sam3, cass_batch, tmp_path):
    from sam3_angio.model.adapters import adapter_tensors, load_adapter, save_adapter
    from sam3_angio.model.checkpoint import CheckpointError

    trained = _lora_wrapper(tiny_sam3).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in trained.named_parameters():
            if "lora_B" in n or n.startswith(OURS):
                p.add_(torch.randn_like(p) * 0.05)  # "trained" adapters and heads
    path = tmp_path / "adapter.pt"
    assert save_adapter(trained.state_dict(), str(path), {"task": "cass"})
    saved = adapter_tensors(trained.state_dict())
    assert saved and all("lora_" in k or k.startswith(OURS) for k in saved)
    n_adapter = sum(v.numel() for v in saved.values())
    assert n_adapter < 0.2 * sum(v.numel() for v in trained.state_dict().values())
    fresh = _lora_wrapper(tiny_sam3).eval()  # base weights + new LoRA (B = 0) + newly initialised heads
    assert load_adapter(fresh, str(path))["task"] == "cass"
    with torch.no_grad():
        a, b = _last(trained(cass_batch)), _last(fresh(cass_batch))
    for key in ("pred_logits", "pred_boxes", "pred_masks", "cass_logits"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    with pytest.raises(CheckpointError, match="model.lora"):
        load_adapter(_wrapper(copy.deepcopy(tiny_sam3)), str(path))  # no LoRA: an error, not a silent no-op
    with pytest.raises(CheckpointError, match="does not fit"):  # other targets
        load_adapter(_lora_wrapper(tiny_sam3, {**ALL, "targets": ["vision_trunk"]}), str(path))


def test_train_py_check_names_the_groups_of_a_misspelt_target():
    from conftest import check_train

    out = check_train(["-c", "configs/angiography/cass.yaml", "--check", "model.name=sam3_tiny",
                     "model.lora.enabled=true", "model.lora.targets=[vision_trunc]"])
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "vision_trunc" in text and all(g in text for g in TARGET_GROUPS)


def test_a_lora_checkpoint_into_a_model_without_those_adapters_is_an_error(tiny_sam3):
    """A LoRA run's checkpoint loaded into a model built without model.lora (predict/eval with -c of the
    plain config, phase 2 without LoRA from a LoRA phase 1) loaded its base weights and dropped the
    adapters as 'unexpected' keys: the model predicted as the untrained base, without a word."""
    from sam3_angio.model.checkpoint import CheckpointError, load_into

    lora = copy.deepcopy(tiny_sam3)
    apply_lora(lora, {**ALL, "targets": ["vision_trunk"]})
    sd = {k: v + 0.01 if "lora_B" in k else v for k, v in lora.state_dict().items()}
    plain = copy.deepcopy(tiny_sam3)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"holds LoRA adapters, \d+ of whose tensors have no place in this "
                                              r"model .*model\.lora\.enabled=true"):
        load_into(plain, sd, "lora_run.pt")
    assert all(torch.equal(v, before[k]) for k, v in plain.state_dict().items())  # nothing loaded
    other_r = copy.deepcopy(tiny_sam3)
    apply_lora(other_r, {**ALL, "r": 2, "targets": ["vision_trunk"]})
    with pytest.raises(CheckpointError, match="tensors do not fit this model"):
        load_into(other_r, sd, "lora_run.pt")
    same = copy.deepcopy(tiny_sam3)
    apply_lora(same, {**ALL, "targets": ["vision_trunk"]})
    report = load_into(same, sd, "lora_run.pt")
    assert not report.unexpected and not report.missing


def test_an_adapter_with_nan_values_is_refused(tiny_sam3, tmp_path):
    """Merged into the base, one NaN adapter tensor made every prediction NaN: 0 segments, quietly."""
    from sam3_angio.model.adapters import load_adapter, save_adapter
    from sam3_angio.model.checkpoint import CheckpointError

    trained = _lora_wrapper(tiny_sam3, {**ALL, "targets": ["vision_trunk"]})
    sd = dict(trained.state_dict())
    key = next(k for k in sd if "lora_B" in k)
    sd[key] = torch.full_like(sd[key], float("nan"))
    path = tmp_path / "adapter.pt"
    assert save_adapter(sd, str(path), {"task": "cass"})
    with pytest.raises(CheckpointError, match=rf"adapter .*adapter\.pt holds NaN or inf values in 1 tensors \(first: "
                                              rf"{re.escape(key)}\)"):
        load_adapter(_lora_wrapper(tiny_sam3, {**ALL, "targets": ["vision_trunk"]}), str(path), check_base=False)
