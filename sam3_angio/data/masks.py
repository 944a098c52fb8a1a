"""Binary masks on disk (PNG/other images or ``.npy``): reading, header-only shape checks, resizing.

Masks are ``(H, W)`` booleans in frame pixel coordinates; any non-zero value is foreground.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import numpy as np
from PIL import Image

from sam3_angio.errors import DataError

PathLike = Union[str, Path]

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".gif")
MASK_SUFFIXES = IMAGE_SUFFIXES + (".npy",)


class MaskError(DataError):
    """A mask file that cannot be read as a 2-D mask."""


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in MASK_SUFFIXES:
        raise MaskError(
            f"mask '{path}' has an unsupported type '{path.suffix}' (expected one of "
            f"{', '.join(MASK_SUFFIXES)})"
        )
    if not path.is_file():
        raise MaskError(f"mask '{path}' does not exist")


def mask_shape(path: PathLike) -> Tuple[int, int]:
    """``(H, W)`` of a mask file, read from its header only."""
    path = Path(path)
    _check_suffix(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            shape = tuple(arr.shape)
            if len(shape) == 3 and shape[2] in (1, 3, 4):
                shape = shape[:2]
        else:
            with Image.open(path) as im:
                shape = (im.height, im.width)
    except MaskError:
        raise
    except Exception as e:
        raise MaskError(f"mask '{path}' cannot be read: {e}") from None
    if len(shape) != 2:
        raise MaskError(f"mask '{path}' has shape {shape}; expected a 2-D (H, W) mask")
    return int(shape[0]), int(shape[1])


def read_mask(path: PathLike) -> np.ndarray:
    """The mask at ``path`` as ``(H, W)`` bool (non-zero = foreground; colour: any channel)."""
    path = Path(path)
    _check_suffix(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                arr = np.asarray(im)
    except Exception as e:
        raise MaskError(f"mask '{path}' cannot be read: {e}") from None
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        arr = arr[..., : min(3, arr.shape[2])].max(axis=2)
    if arr.ndim != 2:
        raise MaskError(f"mask '{path}' has shape {arr.shape}; expected a 2-D (H, W) mask")
    return arr != 0


def resize_nearest(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a ``(h, w)`` bool mask to ``shape = (H, W)``.

    Output pixel ``(i, j)`` takes input pixel ``(floor((i + 0.5) * h / H), floor((j + 0.5) * w / W))``
    (pixel centres), so an integer up- then down-scaling returns the original mask exactly.
    """
    h, w = mask.shape
    H, W = int(shape[0]), int(shape[1])
    if (h, w) == (H, W):
        return mask.astype(bool, copy=True)
    rows = np.minimum(((np.arange(H) + 0.5) * h / H).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(W) + 0.5) * w / W).astype(np.int64), w - 1)
    return mask[rows[:, None], cols[None, :]].astype(bool)


def save_mask_png(path: PathLike, mask: np.ndarray) -> None:
    """Write a bool mask as an 8-bit PNG (0 / 255)."""
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, optimize=False)
