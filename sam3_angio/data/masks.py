"""Binary masks on disk (PNG/other images or ``.npy``): reading, header-only shape checks, resizing.

Masks are ``(H, W)`` booleans in frame pixel coordinates; any non-zero value is foreground (a JPEG,
whose compression noise is non-zero, is thresholded half-way between its darkest and brightest value).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

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
            if len(shape) == 3 and shape[2] in (1, 2, 3, 4):
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


LOSSY_SUFFIXES = (".jpg", ".jpeg")  # JPEG blurs a mask's edges into many grey values


def without_alpha(arr: np.ndarray) -> np.ndarray:
    """``(H, W, 2|4)`` grey + alpha / RGBA -> its colour planes ``(H, W, 1|3)``, or the alpha ``(H, W, 1)``
    when the colour is constant and the alpha varies (a mask painted through its alpha channel); any
    other array unchanged."""
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        colour, alpha = arr[..., :-1], arr[..., -1]
        return alpha[..., None] if colour.min() == colour.max() and alpha.min() != alpha.max() else colour
    return arr


def lossy_foreground(arr: np.ndarray, path: Path) -> Optional[np.ndarray]:
    """For a lossy file (JPEG), whose compression noise would turn the whole background into vessel, the
    mask thresholded half-way between its darkest and brightest value; None for any other file."""
    if path.suffix.lower() not in LOSSY_SUFFIXES or not arr.size:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    return arr > (lo + hi) / 2 if hi > lo else np.zeros(arr.shape, bool)


def _foreground(arr: np.ndarray, path: Path) -> np.ndarray:
    """A mask array as read -> ``(H, W)`` bool: any non-zero value is foreground, except in a lossy
    file (JPEG, :func:`lossy_foreground`)."""
    if arr.dtype.kind not in "biuf":
        raise MaskError(f"mask '{path}' holds {arr.dtype} values; expected numbers (0 = background)")
    arr = without_alpha(arr)
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        arr = arr.max(axis=2)
    if arr.ndim != 2:
        raise MaskError(f"mask '{path}' has shape {arr.shape}; expected a 2-D (H, W) mask")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise MaskError(f"mask '{path}' holds NaN or infinite values; expected 0 for background, non-zero for vessel")
    lossy = lossy_foreground(arr, path)
    return lossy if lossy is not None else arr != 0


def read_mask(path: PathLike) -> np.ndarray:
    """The mask at ``path`` as ``(H, W)`` bool (non-zero = foreground; colour: any channel; a constant
    colour with a varying alpha: the alpha; JPEG: above half-way between its darkest and brightest value)."""
    path = Path(path)
    _check_suffix(path)
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im)
    except Exception as e:
        raise MaskError(f"mask '{path}' cannot be read: {e}") from None
    return _foreground(arr, path)


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
