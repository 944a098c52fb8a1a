"""Run SAM3's native model and trainer on a machine without CUDA.

Each CUDA-only spot listed in SAM3_NOTES.md gets one small, named patch. ``apply()`` installs them
only when ``torch.cuda.is_available()`` is false (never on a GPU), is idempotent, and records what it
did in ``APPLIED`` so that a run's log (and the tests) can say exactly which patches are active.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Callable, Dict, List

import torch

log = logging.getLogger(__name__)

APPLIED: List[str] = []
_PATCHES: Dict[str, Callable[[], None]] = {}


def _patch(name: str):
    def deco(fn):
        _PATCHES[name] = fn
        return fn

    return deco


def _cpu_device(device):
    """Map a requested "cuda" device to the CPU when CUDA is absent."""
    if device is not None and str(device).startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    return device


@_patch("position_encoding_precompute")
def _position_encoding():
    # PositionEmbeddingSine(precompute_resolution=R) fills its cache with tensors allocated on "cuda"
    # in __init__. Build without the precompute, then fill the same cache on the CPU.
    from sam3.model.position_encoding import PositionEmbeddingSine

    orig = PositionEmbeddingSine.__init__

    @functools.wraps(orig)
    def __init__(self, *args, precompute_resolution=None, **kwargs):
        orig(self, *args, precompute_resolution=None, **kwargs)
        if precompute_resolution is not None:
            r = precompute_resolution
            for size in ((r // 4, r // 4), (r // 8, r // 8), (r // 16, r // 16), (r // 32, r // 32)):
                self.forward(torch.zeros((1, 1) + size))
                self.cache[size] = self.cache[size].clone().detach()

    PositionEmbeddingSine.__init__ = __init__


@_patch("decoder_coords_device")
def _decoder_coords():
    # TransformerDecoder(resolution=..., stride=...) precomputes box-RPB coordinates on "cuda".
    from sam3.model.decoder import TransformerDecoder

    orig = TransformerDecoder._get_coords  # a staticmethod: (H, W, device)

    @functools.wraps(orig)
    def _get_coords(H, W, device):
        return orig(H, W, _cpu_device(device))

    TransformerDecoder._get_coords = staticmethod(_get_coords)


@_patch("tensor_pin_memory")
def _pin_memory():
    # geometry_encoders.py pins a 4-element tensor before copying it to the boxes' device; pinning
    # needs a CUDA driver. Without CUDA, pinned memory means nothing: return the tensor itself.
    orig = torch.Tensor.pin_memory

    @functools.wraps(orig)
    def pin_memory(self, *args, **kwargs):
        if torch.cuda.is_available():
            return orig(self, *args, **kwargs)
        return self

    torch.Tensor.pin_memory = pin_memory


@_patch("focal_loss_triton")
def _focal_loss():
    # loss_fns.sigmoid_focal_loss defaults to a Triton kernel (triton=True); its triton=False branch is
    # the plain PyTorch version. Choose by where the tensors are, so a CPU tensor never meets Triton.
    from sam3.train.loss import loss_fns

    orig = loss_fns.sigmoid_focal_loss
    if getattr(orig, "_sam3_angio_cpu", False):
        return

    @functools.wraps(orig)
    def sigmoid_focal_loss(inputs, targets, *args, triton=True, **kwargs):
        return orig(inputs, targets, *args, triton=bool(triton and inputs.is_cuda), **kwargs)

    sigmoid_focal_loss._sam3_angio_cpu = True
    loss_fns.sigmoid_focal_loss = sigmoid_focal_loss


@_patch("mem_meter")
def _mem_meter():
    # MemMeter.update reads torch.cuda.max_memory_allocated(); without CUDA report 0 GB.
    from sam3.train.utils import train_utils

    orig = train_utils.MemMeter.update

    @functools.wraps(orig)
    def update(self, n=1, reset_peak_usage=True):
        if torch.cuda.is_available():
            return orig(self, n=n, reset_peak_usage=reset_peak_usage)
        self.val = 0.0
        self.sum += self.val * n
        self.count += n
        self.avg = self.sum / self.count
        self.peak = max(self.peak, self.val)

    train_utils.MemMeter.update = update


@_patch("dummy_loss_device")
def _dummy_loss():
    # sam3_loss.DummyLoss(device="cuda") by default.
    from sam3.train.loss.sam3_loss import DummyLoss

    orig = DummyLoss.__init__

    @functools.wraps(orig)
    def __init__(self, *args, device="cuda", **kwargs):
        orig(self, *args, device=_cpu_device(device), **kwargs)

    DummyLoss.__init__ = __init__


@_patch("postprocess_masks_on_gpu")
def _postprocess():
    # PostProcessImage(always_interpolate_masks_on_gpu=True) asserts a CUDA device.
    from sam3.eval.postprocessors import PostProcessImage

    orig = PostProcessImage.__init__

    @functools.wraps(orig)
    def __init__(self, *args, always_interpolate_masks_on_gpu=False, **kwargs):
        orig(self, *args, always_interpolate_masks_on_gpu=False, **kwargs)

    PostProcessImage.__init__ = __init__


@_patch("vl_text_device")
def _vl_text():
    # SAM3VLBackbone.forward_text defaults to device="cuda" (the image model passes its own device;
    # other callers may not).
    from sam3.model.vl_combiner import SAM3VLBackbone

    orig = SAM3VLBackbone.forward_text

    @functools.wraps(orig)
    def forward_text(self, captions, *args, device="cuda", **kwargs):
        return orig(self, captions, *args, device=_cpu_device(device), **kwargs)

    SAM3VLBackbone.forward_text = forward_text


@_patch("autocast_warning")
def _autocast():
    # trainer.py wraps the forward in torch.autocast(device_type="cuda"); on a CPU that only warns,
    # once per step. The warning says nothing the banner does not already say.
    warnings.filterwarnings("ignore", message=".*CUDA is not available.*Disabling", category=UserWarning)
    warnings.filterwarnings("ignore", message="User provided device_type of 'cuda'", category=UserWarning)


# Not patched, on purpose: sam3/model/edt.py (a Triton-only distance transform) is used only by the
# video tracker (sam3_tracker_utils), never by the image model we train.


def apply(force: bool = False) -> List[str]:
    """Install the CPU patches when CUDA is unavailable (or when ``force``). Returns what is active."""
    if torch.cuda.is_available() and not force:
        return list(APPLIED)
    for name, fn in _PATCHES.items():
        if name in APPLIED:
            continue
        fn()
        APPLIED.append(name)
    log.info("sam3-angio CPU compatibility patches active: %s", ", ".join(APPLIED))
    return list(APPLIED)


def patch_names() -> List[str]:
    return list(_PATCHES)
