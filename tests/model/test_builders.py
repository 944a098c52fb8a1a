"""The tiny SAM3, the model choice (auto / sam3 / sam3_tiny) and checkpoint loading reports."""

from __future__ import annotations


import pytest
import torch



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
    with pytest.raises(CheckpointError, match="bad.pt is not a torch checkpoint: it is a text file"):
        read_state_dict(str(bad))


def test_a_checkpoint_with_no_sam3_tensor_is_refused_before_the_real_model_is_built(tiny_sam3, tmp_path,
                                                                                     monkeypatch):
    """The early check knows SAM3's top-level parts (the same classes as the tiny model's) and stops a
    foreign file before sam3's builder runs (a minute on a CPU)."""
    import sam3.model_builder

    from sam3_angio.model import builders
    from sam3_angio.model.checkpoint import CheckpointError

    assert set(builders.SAM3_IMAGE_PARTS) == {k.split(".", 1)[0] for k in tiny_sam3.state_dict()}
    junk = tmp_path / "sam3.pt"
    torch.save({"detector.something.weight": torch.zeros(3)}, junk)

    def never(**kw):
        raise AssertionError("the real model was built for a checkpoint that cannot fit it")

    monkeypatch.setattr(sam3.model_builder, "build_sam3_image_model", never)
    with pytest.raises(CheckpointError, match=r"matched no tensor.*something\.weight.*backbone\."):
        builders.build_sam3(str(junk))
