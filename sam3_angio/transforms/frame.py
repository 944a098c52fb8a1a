"""Frame preparation: any frame the data layer produces (uint8, uint16, float; gray or colour; PIL,
numpy or tensor) -> the 8-bit RGB PIL image (or [0, 1] float tensor) SAM3's transforms expect.

``prepare_frame(array (H, W) | (H, W, C)) -> (H, W) float32 in [0, 1]``; ``PrepareXRayFrame`` applies
it to every image of a ``Datapoint`` and writes ``(H, W, 3)`` uint8 RGB (or ``(3, H, W)`` float32).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image as PILImage

from sam3.train.data.sam3_image_dataset import Datapoint

from sam3_angio.registry import TRANSFORMS

SCALINGS = ("auto", "dtype", "minmax", "percentile")
OUTPUTS = ("pil", "tensor")
# Detector bit depths tried by scaling="auto" for integer frames wider than 8 bits.
_BIT_DEPTHS = (10, 12, 14, 16)
# ITU-R 601-2 luma, the weights PIL's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def frame_to_array(data, channels_first: Optional[bool] = None) -> np.ndarray:
    """PIL / numpy / torch pixel data -> numpy ``(H, W)`` (gray) or ``(H, W, C)``, original dtype.

    numpy and PIL data are channels-last; torch tensors are channels-first ``(C, H, W)`` (torch's
    convention) unless ``channels_first=False``.
    """
    if isinstance(data, PILImage.Image):
        if data.mode == "P":
            data = data.convert("RGB")
        arr = np.asarray(data)
        if data.mode in ("I;16B",):  # big-endian 16 bit: make it native
            arr = arr.astype(np.uint16)
        return arr
    if isinstance(data, torch.Tensor):
        arr = data.detach().cpu().numpy()
        if arr.ndim == 3 and (channels_first if channels_first is not None else True):
            arr = arr.transpose(1, 2, 0)
        return arr
    if isinstance(data, np.ndarray):
        return data
    raise TypeError(f"frame must be a PIL image, numpy array or torch tensor, found {type(data).__name__}")


def _to_gray(arr: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W), same dtype where the channels are identical, else float32 luma."""
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"frame of shape {arr.shape}: expected (H, W) or (H, W, C) with C in 1..4")
    c = arr.shape[2]
    if c in (1, 2):  # gray, or gray + alpha
        return arr[..., 0]
    rgb = arr[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    return rgb.astype(np.float32) @ _LUMA


def _scale(gray: np.ndarray, scaling: str, bits_stored: Optional[int], percentiles: Tuple[float, float]) -> np.ndarray:
    """(H, W) any dtype -> float32 in [0, 1] (see ``PrepareXRayFrame`` for the rules)."""
    if gray.dtype == np.bool_:
        return gray.astype(np.float32)
    x = gray.astype(np.float32)
    if not np.isfinite(x).all():
        # ValueError: SAM3's dataset logs it and moves on to the next sample.
        raise ValueError(f"frame has {int((~np.isfinite(x)).sum())} non-finite pixel(s) (NaN/inf)")

    def minmax(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)

    if scaling == "minmax":
        return minmax(x, float(x.min()), float(x.max()))
    if scaling == "percentile":
        lo, hi = np.percentile(x, percentiles)
        return np.clip(minmax(x, float(lo), float(hi)), 0.0, 1.0)

    is_int = np.issubdtype(gray.dtype, np.integer)
    if scaling == "dtype":
        if gray.dtype == np.uint8:
            return x / 255.0
        if is_int:
            return np.clip(x / float(2 ** (bits_stored or 16) - 1), 0.0, 1.0)
        return np.clip(x, 0.0, 1.0)

    # scaling == "auto"
    lo, hi = float(x.min()), float(x.max())
    if gray.dtype == np.uint8:
        return x / 255.0
    if is_int:
        if bits_stored:
            return np.clip(x / float(2 ** bits_stored - 1), 0.0, 1.0)
        if lo >= 0:
            for bits in _BIT_DEPTHS:
                if hi <= 2 ** bits - 1:
                    return x / float(2 ** bits - 1)
        return minmax(x, lo, hi)
    if lo >= 0.0 and hi <= 1.0:
        return x
    if lo >= 0.0 and hi <= 255.0:
        return x / 255.0
    return minmax(x, lo, hi)


def prepare_frame(
    data,
    scaling: str = "auto",
    bits_stored: Optional[int] = None,
    percentiles: Sequence[float] = (0.5, 99.5),
    invert: bool = False,
    clahe: bool = False,
    clahe_clip_limit: float = 0.01,
    clahe_kernel_size: Optional[int] = None,
) -> np.ndarray:
    """One frame (PIL, numpy ``(H, W[, C])``, torch ``(C, H, W)``) -> ``(H, W)`` float32 in [0, 1]."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling={scaling!r}; expected one of {SCALINGS}")
    gray = _to_gray(frame_to_array(data))
    x = _scale(gray, scaling, bits_stored, (float(percentiles[0]), float(percentiles[1])))
    if invert:
        x = 1.0 - x
    if clahe:
        from skimage.exposure import equalize_adapthist

        x = equalize_adapthist(x, kernel_size=clahe_kernel_size, clip_limit=clahe_clip_limit).astype(np.float32)
    return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)


@TRANSFORMS.register()
class PrepareXRayFrame:
    """Any X-ray frame (uint8/uint16/float, gray/RGB) -> 8-bit RGB PIL (default) or [0, 1] tensor.

    Put it first in the pipeline (before ``DecodeRle``): SAM3's ``DecodeRle``, ``RandomResizeAPI`` and
    ``PadToSizeAPI`` (non-v2) expect PIL images, so ``output="pil"`` is the default. Rules of
    ``scaling`` (to [0, 1]):

    - ``"auto"`` (default): uint8 / 255; wider integers / (2**b - 1) with b = ``bits_stored`` if given,
      else the smallest of 10, 12, 14, 16 bits that holds the frame's maximum (a 12-bit detector frame
      stored in uint16 maps by 4095); float frames kept if in [0, 1], / 255 if in [0, 255], else
      min-max; bool as 0/1.
    - ``"dtype"``: uint8 / 255, other integers / (2**``bits_stored`` - 1) (16 when unset), float clipped.
    - ``"minmax"``: per-frame min..max.  ``"percentile"``: per-frame ``percentiles`` window, clipped.

    Colour frames become gray (identical channels kept as they are, otherwise ITU-R 601 luma) and are
    written as 3 identical channels. ``invert`` flips MONOCHROME1-style frames (vessels bright).
    ``clahe`` applies contrast-limited adaptive histogram equalisation
    (``skimage.exposure.equalize_adapthist``); off by default, see docs/transforms.md.
    """

    def __init__(
        self,
        scaling: str = "auto",
        bits_stored: Optional[int] = None,
        percentiles: Sequence[float] = (0.5, 99.5),
        invert: bool = False,
        clahe: bool = False,
        clahe_clip_limit: float = 0.01,
        clahe_kernel_size: Optional[int] = None,
        output: str = "pil",
    ) -> None:
        if scaling not in SCALINGS:
            raise ValueError(f"PrepareXRayFrame: scaling={scaling!r}; expected one of {SCALINGS}")
        if output not in OUTPUTS:
            raise ValueError(f"PrepareXRayFrame: output={output!r}; expected one of {OUTPUTS}")
        if bits_stored is not None and not 1 <= int(bits_stored) <= 32:
            raise ValueError(f"PrepareXRayFrame: bits_stored={bits_stored}; expected 1..32 or null")
        self.kwargs = dict(
            scaling=scaling,
            bits_stored=bits_stored,
            percentiles=tuple(percentiles),
            invert=invert,
            clahe=clahe,
            clahe_clip_limit=clahe_clip_limit,
            clahe_kernel_size=clahe_kernel_size,
        )
        self.output = output

    def __call__(self, datapoint: Datapoint, **kwargs) -> Datapoint:
        for img in datapoint.images:
            x = prepare_frame(img.data, **self.kwargs)  # (H, W) float32 in [0, 1]
            h, w = x.shape
            if self.output == "pil":
                u8 = np.round(x * 255.0).astype(np.uint8)
                img.data = PILImage.fromarray(np.repeat(u8[..., None], 3, axis=2), mode="RGB")
            else:
                img.data = torch.from_numpy(x)[None].expand(3, h, w).contiguous()
            img.size = (h, w)
        return datapoint

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"PrepareXRayFrame({args}, output={self.output!r})"
