"""Reading one frame of an angiography cine stored as ``.npy`` without loading the whole cine.

Cines are ``(T, H, W)`` or ``(T, H, W, C)`` arrays (uint8, uint16, other integers or floats); a frame is
read through a memory map, so a 120-frame 1016x1016 cine costs one frame of memory, not 120.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from sam3_angio.errors import DataError

PathLike = Union[str, Path]

# ITU-R BT.601 luma weights, for the rare colour-encoded cine (C = 3 or 4; alpha is ignored).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class CineError(DataError):
    """A cine file that cannot be read as ``(T, H, W[, C])`` frames."""


@dataclass(frozen=True)
class CineInfo:
    """Header facts of a cine, read without touching its pixel data."""

    path: Path
    n_frames: int
    height: int
    width: int
    channels: int  # 0 for (T, H, W)
    dtype: np.dtype

    @property
    def frame_shape(self) -> Tuple[int, int]:
        return (self.height, self.width)


def _check_npy_file(path: Path) -> None:
    """The two damages numpy names badly: a file that is not .npy at all (numpy then talks of pickled
    data) and a truncated one (numpy: 'mmap length is greater than file size')."""
    from numpy.lib import format as npy

    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise CineError(f"cine '{path}' is not a NumPy .npy file (no .npy header: empty, damaged or another "
                            f"format renamed); expected an array (T, H, W) or (T, H, W, C) saved with numpy.save")
        f.seek(0)
        try:
            version = npy.read_magic(f)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _, dtype = read(f)
        except Exception:
            return  # a header numpy cannot parse: np.load below says why
        offset = f.tell()
    if dtype.hasobject:
        return
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise CineError(f"cine '{path}' is truncated: its header says {tuple(shape)} {dtype} ({need:,d} bytes) but "
                        f"the file has {size:,d} bytes; copy the file again")


def open_cine(path: PathLike) -> np.ndarray:
    """The cine as a read-only memory map ``(T, H, W[, C])``; no pixel is read until indexed."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise CineError(
            f"cine '{path}' is not a .npy file (expected a NumPy array (T, H, W) or (T, H, W, C) "
            f"saved with numpy.save; convert other formats to .npy first)"
        )
    if not path.is_file():
        raise CineError(f"cine '{path}' does not exist")
    _check_npy_file(path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # corrupt header, pickled object arrays, ...
        raise CineError(f"cine '{path}' cannot be read as a .npy array: {e}") from None
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[3] not in (1, 3, 4)):
        raise CineError(
            f"cine '{path}' has shape {tuple(arr.shape)}; expected (T, H, W) or (T, H, W, C) "
            f"with C in 1, 3, 4"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == np.bool_):
        raise CineError(f"cine '{path}' has dtype {arr.dtype}; expected integers or floats")
    return arr


def cine_info(path: PathLike) -> CineInfo:
    arr = open_cine(path)
    return CineInfo(
        path=Path(path),
        n_frames=int(arr.shape[0]),
        height=int(arr.shape[1]),
        width=int(arr.shape[2]),
        channels=int(arr.shape[3]) if arr.ndim == 4 else 0,
        dtype=arr.dtype,
    )


def read_frame(path: PathLike, index: int) -> np.ndarray:
    """Frame ``index`` of the cine at ``path``, copied out of a memory map.

    Returns ``(H, W)`` or ``(H, W, C)`` in the cine's own dtype. Only that frame's bytes are read.
    """
    arr = open_cine(path)
    n = arr.shape[0]
    if not (0 <= int(index) < n):
        raise CineError(
            f"frame_index {index} is out of range for cine '{path}' with {n} frames "
            f"(valid: 0..{n - 1})"
        )
    return np.array(arr[int(index)])


def to_gray_uint8(frame: np.ndarray) -> np.ndarray:
    """One frame ``(H, W)`` or ``(H, W, C)`` -> 8-bit grayscale ``(H, W)`` for PNG.

    Scaling (the same rules for every frame, so it needs nothing but the frame itself):
    - uint8 / bool: unchanged (bool -> 0/255);
    - float with all values in [0, 1]: ``round(255 * x)``;
    - anything else (uint16 and other integers, floats outside [0, 1]): a per-frame window from the
      0.5th to the 99.5th percentile mapped linearly onto 0..255 and clipped. Detector bit depths
      (10/12/14 bit in 16-bit containers) vary, so a fixed divisor would leave most frames dark.
    Colour frames (C = 3 or 4) become luma (BT.601; alpha ignored); C = 1 is squeezed.
    """
    f = np.asarray(frame)
    if f.ndim == 3:
        if f.shape[2] == 1:
            f = f[..., 0]
        elif f.shape[2] in (3, 4):
            rgb = f[..., :3]
            if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                f = rgb[..., 0]
            else:
                luma = rgb.astype(np.float64) @ _LUMA
                if rgb.dtype == np.uint8:
                    return np.clip(np.round(luma), 0, 255).astype(np.uint8)
                f = luma
        else:
            raise CineError(f"frame has {f.shape[2]} channels; expected 1, 3 or 4")
    if f.ndim != 2:
        raise CineError(f"frame has shape {f.shape}; expected (H, W) or (H, W, C)")
    if f.dtype == np.uint8:
        return np.ascontiguousarray(f)
    if f.dtype == np.bool_:
        return f.astype(np.uint8) * 255
    x = f.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise CineError("frame contains NaN or infinite values")
    if np.issubdtype(f.dtype, np.floating) and x.min() >= 0.0 and x.max() <= 1.0:
        return np.round(x * 255.0).astype(np.uint8)
    lo, hi = np.percentile(x, [0.5, 99.5])
    if hi <= lo:
        return np.zeros(x.shape, np.uint8) if hi <= 0 else np.full(x.shape, 255, np.uint8)
    return np.round(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
