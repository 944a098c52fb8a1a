"""Read and write the pixel data of a SAM3 ``Image`` (PIL 8-bit, or a float tensor in [0, 1]) as one
float tensor, so that our augmentations work the same before and after SAM3's ``ToTensorAPI``.

``to_unit_tensor(data) -> (x (C, H, W) float32 in [0, 1], restore)``; ``restore(x)`` gives back data of
the input's own kind (PIL of the same mode, or a tensor of the same dtype).
"""

from __future__ import annotations

from typing import Callable, Tuple, Union

import numpy as np
import torch
from PIL import Image as PILImage

ImageData = Union[torch.Tensor, PILImage.Image]

# Normalised frames (SAM3's NormalizeAPI with mean 0.5, std 0.5 gives [-1, 1]) are outside this range.
_RANGE_TOL = 1e-3


def image_hw(data: ImageData) -> Tuple[int, int]:
    """(height, width) of PIL or tensor pixel data."""
    if isinstance(data, PILImage.Image):
        w, h = data.size
        return h, w
    if isinstance(data, torch.Tensor):
        return int(data.shape[-2]), int(data.shape[-1])
    raise TypeError(f"image data must be a PIL image or a torch tensor, found {type(data).__name__}")


def to_unit_tensor(data: ImageData, who: str) -> Tuple[torch.Tensor, Callable[[torch.Tensor], ImageData]]:
    """Pixel data -> ``(C, H, W)`` float32 in [0, 1] and the function that converts back.

    Accepted: PIL ``L`` / ``RGB`` (8 bit), tensors ``(H, W)`` or ``(C, H, W)`` that are uint8 or float in
    [0, 1]. Anything else (16-bit PIL, a normalised tensor) is a pipeline-order mistake; the error says
    where ``who`` belongs. Errors are TypeError/RuntimeError on purpose: SAM3's dataset catches
    ValueError and silently moves on to the next sample.
    """
    if isinstance(data, PILImage.Image):
        if data.mode not in ("L", "RGB"):
            raise TypeError(
                f"{who}: PIL image mode {data.mode!r}, expected 'L' or 'RGB' (8 bit). Put "
                f"sam3_angio.transforms.frame.PrepareXRayFrame first in the pipeline to convert "
                f"16-bit or float frames."
            )
        mode = data.mode
        arr = np.asarray(data, dtype=np.float32) / 255.0
        x = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())

        def restore_pil(y: torch.Tensor) -> PILImage.Image:
            a = (y.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
            return PILImage.fromarray(a[0] if mode == "L" else a.transpose(1, 2, 0), mode=mode)

        return x, restore_pil

    if isinstance(data, torch.Tensor):
        squeeze = data.dim() == 2
        t = data[None] if squeeze else data
        if t.dim() != 3:
            raise TypeError(f"{who}: image tensor of shape {tuple(data.shape)}, expected (C, H, W) or (H, W)")
        dtype = data.dtype
        if dtype == torch.uint8:
            x = t.float() / 255.0
        elif dtype.is_floating_point:
            x = t.float()
            lo, hi = float(x.min()), float(x.max())
            if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
                raise RuntimeError(
                    f"{who}: image tensor values in [{lo:.3g}, {hi:.3g}], expected [0, 1]. It must sit "
                    f"before NormalizeAPI in the pipeline (after ToTensorAPI is fine)."
                )
        else:
            raise TypeError(f"{who}: image tensor dtype {dtype}, expected uint8 or float in [0, 1]")

        def restore_tensor(y: torch.Tensor) -> torch.Tensor:
            y = y.clamp(0, 1)
            y = (y * 255.0).round().to(torch.uint8) if dtype == torch.uint8 else y.to(dtype)
            return y[0] if squeeze else y

        return x, restore_tensor

    raise TypeError(f"{who}: image data must be a PIL image or a torch tensor, found {type(data).__name__}")
