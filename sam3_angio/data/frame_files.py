"""Any file that holds angiogram frames - a DICOM file, a cine ``.npy``, an image (one frame, or several:
a multi-page TIFF, an animated GIF / PNG) or a video - opened from its header and read as 8-bit grey
frames ``(H, W)`` uint8, vessels dark.

This is the one reader of pixels for both sides of the project: the study CSV's ``cine_path``
(:mod:`sam3_angio.data.layout`, :mod:`sam3_angio.data.coco_convert`) and the files a user predicts on
(:mod:`sam3_angio.data.inputs`). A frame converted for training and the same frame given to
``tools/predict.py`` are therefore the same pixels (same windowing of deep DICOM / uint16 data, same
luma of a video).

Public API::

    frame_kind(path) -> "dicom" | "cine" | "image" | "video" | None     # content first, then suffix
    open_frames(path, kind=None, read_angles=True, read_spacing=True) -> FrameFile   # headers only
    FrameFile.n_frames, .height, .width, .fps, .view_angles, .mm_per_pixel, .spacing_source
    FrameFile.frames(indices=None) -> Iterator[(k, (H, W) uint8)]      # None: every frame, in order

Readers: :mod:`.dicom` (pydicom; the C-arm angles and the isocenter spacing from the header),
:mod:`.cine` (memory-mapped ``.npy``), :mod:`.media` (tifffile, Pillow, PyAV). Refused when opened: frames
of 0 pixels; an ``.npy`` of one image ``(H, W, C)`` (a last axis of 1-4: as a cine its frames would be
W x C pixels) or channels second ``(T, C, H, W)``. Refused when read: a float frame (``.npy``, TIFF) with
NaN or infinite values, naming the frame and how many (opening reads headers only, so that a long
memory-mapped cine is not read twice: pixels are checked frame by frame as they are read). Errors are the
readers' own :class:`~sam3_angio.errors.DataError` subclasses, one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..view_angles import ViewAngles
from .cine import CineError, open_cine, read_frame, to_gray_uint8
from .dicom import DICOM_SUFFIXES, check_decodable, is_dicom, iter_dicom_frames, read_dicom_header
from .media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_finite, open_media

PathLike = Union[str, Path]
Frames = Iterator[Tuple[int, np.ndarray]]

FRAME_KINDS = ("dicom", "cine", "image", "video")
EXPECTED = ("a DICOM file, a cine .npy, a PNG/JPEG/BMP/TIFF/GIF image (multi-page: a cine) or an "
            "MP4/AVI/MOV/MKV/WebM/MPEG video")
_SKIP_NAMES = {"DICOMDIR"}  # a DICOM index file: DICM marker, no image
_LABEL = {"dicom": "DICOM", "cine": "cine", "image": "image", "video": "video"}

__all__ = ["EXPECTED", "FRAME_KINDS", "FrameFile", "frame_kind", "open_frames"]


@dataclass(frozen=True)
class FrameFile:
    """An opened frame file: what its header says, and a reader of its frames."""

    path: Path
    kind: str  # dicom | cine | image | video
    n_frames: int
    height: int
    width: int
    fps: Optional[float]  # DICOM frame rate, a video's, an animated GIF's; None where the file has none
    view_angles: Optional[ViewAngles]  # from a DICOM header; None = unknown (every other kind)
    mm_per_pixel: Optional[float]  # at the isocenter, from a DICOM header; None = unknown
    spacing_source: str  # dicom:<rule> | unknown
    _read: Callable[[Optional[Sequence[int]]], Frames]

    @property
    def frame_shape(self) -> Tuple[int, int]:
        return (self.height, self.width)

    @property
    def angles_source(self) -> str:
        return "dicom" if self.view_angles is not None else "unknown"

    def frames(self, indices: Optional[Sequence[int]] = None) -> Frames:
        """``(k, (H, W) uint8)`` for frames ``indices`` in the order given (None: every frame, in
        order), decoded one at a time. Indices must lie in ``0..n_frames-1``: the caller checks and
        names its own source (a CSV row, a command-line frame list)."""
        return self._read(None if indices is None else [int(k) for k in indices])


def frame_kind(path: PathLike) -> Optional[str]:
    """The kind of frame file ``path`` is (by its content for DICOM, which may have any name, else by
    its suffix), or None when it is none of them (a CSV, a DICOMDIR, a text file)."""
    path = Path(path)
    if path.name in _SKIP_NAMES:
        return None
    suffix = path.suffix.lower()
    if is_dicom(path) or suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix == ".npy":
        return "cine"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def open_frames(path: PathLike, kind: Optional[str] = None, read_angles: bool = True,
                read_spacing: bool = True) -> FrameFile:
    """Open the frame file at ``path`` from its header (no pixel is decoded, except that a video
    container without a frame count is counted by one decoding pass). ``kind`` None: detected
    (:func:`frame_kind`). ``read_angles`` / ``read_spacing`` False leave a DICOM's angles / spacing
    unread (None), for a caller that has them from elsewhere, so that broken header values do not stop
    it. Raises a :class:`~sam3_angio.errors.DataError` naming the file."""
    path = Path(path)
    kind = kind or frame_kind(path)
    if kind is None:
        raise CineError(f"'{path}' is not a frame file (expected {EXPECTED})")
    if not path.is_file():
        raise CineError(f"{_LABEL.get(kind, kind)} '{path}' does not exist")
    ff = _open(path, kind, read_angles, read_spacing)
    if ff.height < 1 or ff.width < 1:
        raise CineError(f"{_LABEL[kind]} '{path}' has frames of {ff.height}x{ff.width} pixels; expected an image")
    return ff


def _open(path: Path, kind: str, read_angles: bool, read_spacing: bool) -> FrameFile:
    if kind == "dicom":
        header = read_dicom_header(path, read_angles=read_angles, read_spacing=read_spacing)
        check_decodable(header)
        return FrameFile(path, kind, header.n_frames, header.rows, header.columns, header.fps, header.view_angles,
                         header.mm_per_pixel, f"dicom:{header.spacing_source}" if header.mm_per_pixel else "unknown",
                         lambda indices: iter_dicom_frames(header, indices))
    if kind == "cine":
        return _open_npy(path)
    if kind in ("image", "video"):
        media = open_media(path, kind)
        return FrameFile(path, kind, media.n_frames, media.height, media.width, media.fps, None, None, "unknown",
                         media.frames)
    raise ValueError(f"open_frames: kind {kind!r}; expected one of {FRAME_KINDS}")


def _open_npy(path: Path) -> FrameFile:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:
        arr = None  # open_cine below says why
    if arr is not None and arr.ndim == 4 and arr.shape[1] in (1, 3, 4) and arr.shape[3] not in (1, 3, 4):
        raise CineError(f"cine '{path}' has shape {tuple(arr.shape)}, channels second (T, C, H, W) as PyTorch "
                        f"stores them; expected (T, H, W) or (T, H, W, C): save it with the channels last "
                        f"(np.moveaxis(a, 1, -1)) or as grey (T, H, W)")
    if arr is not None and arr.ndim == 2:
        raise CineError(f"cine '{path}' has shape {tuple(arr.shape)}, one 2-D frame, not a cine; expected "
                        f"(T, H, W) or (T, H, W, C). Save a single frame as PNG, or as a one-frame cine with "
                        f"np.save(path, frame[None])")
    shape = open_cine(path).shape
    if len(shape) == 3 and shape[2] <= 4 < min(shape[0], shape[1]):
        raise CineError(f"cine '{path}' has shape {tuple(shape)}: as a cine (T, H, W) its frames would be "
                        f"{shape[1]}x{shape[2]} pixels; it looks like one image (H, W, C) with {shape[2]} "
                        f"channel(s). Save a single frame as PNG, or as a one-frame cine with "
                        f"np.save(path, image[None])")

    def read(indices: Optional[Sequence[int]]) -> Frames:
        for k in (range(shape[0]) if indices is None else indices):
            frame = check_finite(read_frame(path, k), f"cine '{path}' frame {k}", CineError)
            try:
                yield int(k), to_gray_uint8(frame)
            except CineError as e:
                raise CineError(f"cine '{path}' frame {k}: {e}") from None

    return FrameFile(path, "cine", int(shape[0]), int(shape[1]), int(shape[2]), None, None, None, "unknown", read)
