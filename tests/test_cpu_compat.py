"""Each CPU-compatibility patch of SAM3, one test a spot (SAM3_NOTES.md)."""

from __future__ import annotations


import pytest
import torch

from sam3_angio import cpu_compat


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

