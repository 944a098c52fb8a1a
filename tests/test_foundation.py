"""The foundation: each CPU-compatibility patch, the tiny SAM3, the model choice, the registry,
checkpoint loading reports, config composition."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch

from sam3_angio import cpu_compat, registry


# ---------------------------------------------------------------- CPU compatibility, one test a spot

def test_cpu_patches_are_active_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("patches are only applied without CUDA")
    assert set(cpu_compat.apply()) == set(cpu_compat.patch_names())


def test_position_encoding_precompute_builds_on_cpu():
    from sam3.model.position_encoding import PositionEmbeddingSine

    cpu_compat.apply()
    pe = PositionEmbeddingSine(num_pos_feats=256, normalize=True, precompute_resolution=224)
    assert (56, 56) in pe.cache and pe.cache[(56, 56)].device.type == "cpu"
    fresh = PositionEmbeddingSine(num_pos_feats=256, normalize=True)
    x = torch.zeros(1, 1, 56, 56)
    assert torch.equal(pe(x), fresh(x))


def test_decoder_box_rpb_coords_build_on_cpu():
    from sam3.model.decoder import TransformerDecoder

    cpu_compat.apply()
    h, w = TransformerDecoder._get_coords(16, 16, "cuda")
    assert h.device.type == "cpu" and h.shape == (16,) and torch.allclose(w[1], torch.tensor(1 / 16))


def test_pin_memory_is_identity_without_cuda():
    cpu_compat.apply()
    t = torch.arange(4.0)
    assert torch.equal(t.pin_memory(), t)


def test_focal_loss_uses_torch_branch_on_cpu_tensors():
    from sam3.train.loss import loss_fns

    cpu_compat.apply()
    x = torch.randn(2, 5, requires_grad=True)
    y = (torch.rand(2, 5) > 0.5).float()
    got = loss_fns.sigmoid_focal_loss(x, y, num_boxes=2)  # default triton=True would need a GPU
    # Reference: RetinaNet focal loss, alpha 0.25, gamma 2, summed over elements / num_boxes, mean over dim 1.
    p = x.sigmoid()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    ref = ((0.25 * y + 0.75 * (1 - y)) * ce * (1 - p_t) ** 2).mean(1).sum() / 2
    assert torch.allclose(got, ref)
    got.backward()
    assert torch.isfinite(x.grad).all()


def test_mem_meter_reports_zero_without_cuda():
    from sam3.train.utils.train_utils import MemMeter

    cpu_compat.apply()
    m = MemMeter("mem", torch.device("cpu"))
    m.update()
    assert m.val == 0 and m.count == 1


def test_dummy_loss_lives_on_cpu():
    from sam3.train.loss.sam3_loss import DummyLoss

    cpu_compat.apply()
    assert DummyLoss()()["core_loss"].device.type == "cpu"


def test_postprocessor_does_not_demand_a_gpu():
    from sam3.eval.postprocessors import PostProcessImage

    cpu_compat.apply()
    pp = PostProcessImage(max_dets_per_img=10, iou_type="segm", always_interpolate_masks_on_gpu=True)
    assert pp.always_interpolate_masks_on_gpu is False


def test_forward_text_defaults_to_cpu(tiny_sam3):
    out = tiny_sam3.backbone.forward_text(["mid LAD"])  # sam3's default device is "cuda"
    assert out["language_features"].device.type == "cpu"


def test_autocast_warning_is_silenced():
    import warnings

    if torch.cuda.is_available():
        pytest.skip("the warning only exists without CUDA")

    def cuda_autocast_warnings(patched: bool):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if patched:
                cpu_compat._autocast()  # install the filters inside this recording context
            with torch.autocast(device_type="cuda"):  # what sam3 modules do on a CPU
                pass
        return [w for w in caught if "CUDA is not available" in str(w.message)]

    assert cuda_autocast_warnings(patched=False)  # the warning exists...
    assert not cuda_autocast_warnings(patched=True)  # ...and the patch silences it


# ---------------------------------------------------------------- the tiny SAM3

def test_tiny_sam3_is_small_finite_and_sam3(tiny_sam3):
    from sam3.model.sam3_image import Sam3Image

    from sam3_angio.model.tiny import count_parameters

    assert isinstance(tiny_sam3, Sam3Image)
    n = count_parameters(tiny_sam3)
    assert 10e6 < n < 20e6, n
    assert all(torch.isfinite(p).all() for p in tiny_sam3.parameters())


def test_tiny_sam3_is_deterministic_for_a_seed():
    from sam3_angio.model.tiny import build_sam3_tiny

    a, b = build_sam3_tiny(seed=3), build_sam3_tiny(seed=3)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k


def test_tiny_sam3_text_encoder_has_no_nan(tiny_sam3):
    out = tiny_sam3.backbone.forward_text(["proximal RCA", "coronary artery"], device="cpu")
    assert torch.isfinite(out["language_features"]).all()


# ---------------------------------------------------------------- model choice

def test_auto_picks_tiny_only_without_cuda_and_checkpoint():
    from sam3_angio.model.builders import resolve_model_name

    assert resolve_model_name("auto", None, cuda=False) == "sam3_tiny"
    assert resolve_model_name("auto", "/x/sam3.pt", cuda=False) == "sam3"
    assert resolve_model_name("auto", "/x/sam3.pt", cuda=True) == "sam3"
    assert resolve_model_name("sam3_tiny", None, cuda=True) == "sam3_tiny"


def test_auto_on_gpu_without_checkpoint_says_how_to_proceed():
    from sam3_angio.model.builders import ModelChoiceError, resolve_model_name

    with pytest.raises(ModelChoiceError, match="paths.sam3_checkpoint=/path/to/sam3.pt"):
        resolve_model_name("auto", None, cuda=True)


# ---------------------------------------------------------------- checkpoints

def test_sam3_pt_detector_keys_load_with_report(tiny_sam3, tmp_path):
    from sam3_angio.model.builders import build_model
    from sam3_angio.model.checkpoint import load_into, read_state_dict, sam3_image_keys

    released = {f"detector.{k}": v for k, v in tiny_sam3.state_dict().items()}
    released["tracker.some.weight"] = torch.zeros(1)  # the video half of sam3.pt: not ours
    path = tmp_path / "sam3.pt"
    torch.save(released, path)
    fresh = build_model("sam3_tiny")
    fresh.load_state_dict({k: torch.zeros_like(v) for k, v in fresh.state_dict().items()})
    report = load_into(fresh, sam3_image_keys(read_state_dict(str(path))), str(path))
    assert len(report.loaded) == len(tiny_sam3.state_dict()) and not report.missing and not report.unexpected
    for k, v in tiny_sam3.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    assert "backbone.vision_backbone" in report.summary()


def test_ddp_prefixed_trainer_checkpoint_loads(tiny_sam3, tmp_path):
    from sam3_angio.model.checkpoint import read_state_dict, sam3_image_keys

    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {f"module.{k}": v for k, v in tiny_sam3.state_dict().items()}, "epoch": 3}, path)
    sd = sam3_image_keys(read_state_dict(str(path)))
    assert set(sd) == set(tiny_sam3.state_dict())


def test_zero_matched_keys_is_an_error(tiny_sam3):
    from sam3_angio.model.checkpoint import CheckpointError, load_into

    with pytest.raises(CheckpointError, match="matched no tensor"):
        load_into(tiny_sam3, {"unrelated.weight": torch.zeros(2)}, "junk.pt")


def test_backbone_shape_mismatch_is_an_error(tiny_sam3):
    from sam3_angio.model.checkpoint import CheckpointError, load_into

    sd = dict(tiny_sam3.state_dict())
    key = next(k for k in sd if k.startswith("backbone.vision_backbone") and sd[k].ndim == 2)
    sd[key] = torch.zeros(sd[key].shape[0] + 1, sd[key].shape[1])
    with pytest.raises(CheckpointError, match="different model size"):
        load_into(tiny_sam3, sd, "other_size.pt")


def test_corrupt_checkpoint_file_is_a_clear_error(tmp_path):
    from sam3_angio.model.checkpoint import CheckpointError, read_state_dict

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(str(bad))


# ---------------------------------------------------------------- registry

def test_registry_registers_at_definition_and_suggests():
    reg = registry.Registry("scratch")

    @reg.register()
    class ViewThing:
        """One line."""

    assert reg.get("ViewThing") is ViewThing
    with pytest.raises(KeyError, match="Did you mean 'ViewThing'"):
        reg.get("ViewThng")
    assert reg.summaries()[0][2] == "One line."


def test_plugins_register_through_entry_points(monkeypatch):
    mod = types.ModuleType("fake_angio_plugin")

    def register():
        @registry.LOSSES.register()
        class PluginLoss:
            """A plugin's loss."""

    mod.register = register
    monkeypatch.setitem(sys.modules, "fake_angio_plugin", mod)

    class EP:
        name, value = "fake", "fake_angio_plugin:register"

        def load(self):
            return importlib.import_module("fake_angio_plugin").register

    monkeypatch.setattr(registry, "_entry_points", lambda: [EP()])
    monkeypatch.setattr(registry, "_loaded", False)
    registry.load_all()
    assert "PluginLoss" in registry.LOSSES
    registry.LOSSES._obj_map.pop("PluginLoss")


# ---------------------------------------------------------------- metrics summary

def test_val_stats_summary_gives_stable_names():
    from sam3_angio.training.runner import summarize_val_stats

    stats = {  # one line of SAM3's val_stats.json: sam3's COCO evaluator keys and our meters' keys
        "Meters_train/val_angio/coco/coco_eval_segm_AP": 0.25,
        "Meters_train/val_angio/coco/coco_eval_bbox_AR_maxDets@100": 0.5,
        "Meters_train/val_angio/cass_head/cass_head.top1": 0.75,
        "Meters_train/val_angio/coco/dice": 0.6,
        "Losses/val_all_loss": 0.0,
        "Trainer/epoch": 1,
    }
    assert summarize_val_stats(stats) == {"segm.AP": 0.25, "bbox.AR100": 0.5, "cass_head.top1": 0.75, "dice": 0.6}


# ---------------------------------------------------------------- config composition

def test_config_composes_from_path_or_name_with_overrides():
    from sam3_angio.training.config import compose

    a = compose("configs/angiography/cass.yaml", ["trainer.max_epochs=7"])
    b = compose("cass", ["trainer.max_epochs=7"])
    assert a.trainer.max_epochs == b.trainer.max_epochs == 7
    assert a.data.task == "cass"


def test_accelerator_auto_resolves_to_cpu_with_gloo_here():
    from sam3_angio.training.config import compose, finalize

    cfg = finalize(compose("vessel_segmentation"))
    if not torch.cuda.is_available():
        assert cfg.trainer.accelerator == "cpu"
        assert cfg.model.resolved == "sam3_tiny"
        assert cfg.trainer.optim.amp.enabled is False


def test_cluster_submission_from_a_gpu_less_login_node_targets_the_gpu_partition():
    from sam3_angio.training.config import compose, finalize

    cfg = finalize(compose("cass", ["submitit.use_cluster=true", "submitit.cpu_only=false",
                                    "paths.sam3_checkpoint=/models/sam3.pt"]))
    assert cfg.trainer.accelerator == "cuda" and cfg.model.resolved == "sam3"
    assert cfg.trainer.optim.amp.enabled is True
    cpu = finalize(compose("cass", ["submitit.use_cluster=true", "submitit.cpu_only=true"]))
    assert cpu.trainer.accelerator == "cpu" and cpu.model.resolved == "sam3_tiny"


def test_a_restart_with_another_config_keeps_the_earlier_one(tmp_path):
    from sam3_angio.training.cli import save_run_config
    from sam3_angio.training.config import compose, finalize

    a = finalize(compose("cass", [f"paths.experiment_dir={tmp_path}", "trainer.max_epochs=2"]))
    b = finalize(compose("cass", [f"paths.experiment_dir={tmp_path}", "trainer.max_epochs=5"]))
    save_run_config(a)
    save_run_config(a)  # same config: nothing to keep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config_resolved.yaml"]
    save_run_config(b)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("config.2")]
    assert len(kept) == 1 and "max_epochs: 2" in kept[0].read_text()
    assert "max_epochs: 5" in (tmp_path / "config.yaml").read_text()
