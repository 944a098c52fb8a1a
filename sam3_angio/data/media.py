"""Image and video files as runs of frames: a PNG / JPEG / BMP is one frame, a multi-page TIFF, an
animated GIF or PNG, and a video (MP4, AVI, MOV, MKV, WebM, MPEG) are cines. Each file is opened by
:func:`open_media` from its header alone (frame count, frame rate; no pixel decoded), then read one
frame at a time, made 8-bit grey by :func:`sam3_angio.data.cine.to_gray_uint8`.

Public API (what :mod:`sam3_angio.data.inputs` calls)::

    open_media(path, kind) -> Media          # kind "image" | "video"; MediaError naming the file
    Media.n_frames, Media.fps, Media.height, Media.width   # fps None where the file has no rate (TIFF)
    Media.frames(indices=None) -> Iterator[(k, (H, W) uint8)]   # None: every frame, in order

Readers (the field's own, through imageio where it has a plugin):

- TIFF: tifffile, page by page. A page is one frame: ``(H, W)``, ``(H, W, S)`` or planar ``(S, H, W)``
  colour (tifffile writes a 3- or 4-plane array as planar RGB(A), so such a file is one colour frame,
  not three frames). ImageJ and tifffile stacks ``(T, H, W)`` hold one page per frame.
- Other images: Pillow through imageio (``index=...`` counts the frames of an animated GIF / PNG from
  the header; a GIF's frame duration gives its rate). An EXIF Orientation is applied (the frame is the
  picture a viewer shows, its height and width too); CMYK / YCbCr / LAB / HSV are converted to RGB first.
- Video: FFmpeg through PyAV (imageio's ``pyav`` plugin), each frame as its luma plane
  (``format="gray"``: the Y of YUV, no colour round trip). Frames are decoded in order and never by
  seeking: seeking lands on the wrong frame in containers with loose timestamps (measured here:
  MPEG-PS), and a cine of a few hundred frames decodes in well under a second. Containers that do
  not store a frame count (MKV, WebM, MPEG) are counted by one decoding pass when opened.

A video from a viewer export is 8-bit and lossy, and carries neither the C-arm angles nor the pixel
spacing; DICOM is the better source where there is a choice (give ``--angles`` / ``--mm-per-pixel``
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from ..errors import DataError
from .cine import CineError, to_gray_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
_TIFF_SUFFIXES = (".tif", ".tiff")

Frames = Iterator[Tuple[int, np.ndarray]]

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Media", "MediaError", "check_finite", "open_media"]


class MediaError(DataError):
    """An image or video file that cannot be read; one line naming the file (and frame)."""


@dataclass(frozen=True)
class Media:
    """An opened image or video file: its frame count and rate, and a reader of its frames."""

    path: Path
    kind: str  # image | video
    n_frames: int
    fps: Optional[float]
    height: int
    width: int
    _read: Callable[[Optional[Sequence[int]]], Frames]

    def frames(self, indices: Optional[Sequence[int]] = None) -> Frames:
        """``(k, (H, W) uint8)`` for frames ``indices`` in the order given (None: every frame in
        order). An index at or past :attr:`n_frames` is the caller's to refuse first."""
        for k, raw in self._read(indices):
            check_finite(raw, f"{self.kind} '{self.path}'{self._where(k)}")
            try:
                yield k, to_gray_uint8(_channels_last(raw))
            except CineError as e:
                raise MediaError(f"{self.kind} '{self.path}'{self._where(k)}: {e}") from None

    def _where(self, k: int) -> str:
        return f" frame {k}" if self.n_frames > 1 else ""


def check_finite(frame: np.ndarray, where: str, error: Optional[type] = None) -> np.ndarray:
    """``frame`` as it is when it holds no NaN or infinite value (integer frames never do); else
    ``error`` (default :class:`MediaError`) naming ``where`` (the file and frame) and how many pixels.
    Float TIFF pages and float ``.npy`` cines are the frames that can hold them."""
    f = np.asarray(frame)
    if not np.issubdtype(f.dtype, np.inexact):
        return frame
    bad = ~np.isfinite(f)
    if bad.ndim == 3:  # (H, W, C): a pixel with any channel not finite
        bad = bad.any(axis=2)
    n = int(np.count_nonzero(bad))
    if n:
        raise (error or MediaError)(
            f"{where}: {n:,d} of {bad.size:,d} pixels are NaN or infinite ({f.dtype}); expected finite "
            f"intensities: replace them where the file was made (e.g. np.nan_to_num(a, nan=0.0, posinf=0.0, "
            f"neginf=0.0)) and save it again")
    return frame


def _why(e: BaseException) -> str:
    """The first line of a reader's message (imageio appends lines of plugin advice)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0].strip()}" if text else type(e).__name__


def _guard(path: Path, kind: str, call: Callable):
    """``call()`` with a broken file as one MediaError line naming the file."""
    if path.stat().st_size == 0:
        raise MediaError(f"{kind} '{path}' is empty (0 bytes); copy the file again")
    try:
        return call()
    except MediaError:
        raise
    except Exception as e:  # imageio, Pillow, tifffile and PyAV raise many types for a broken file
        raise MediaError(f"{kind} '{path}' cannot be read (not a valid {path.suffix.lstrip('.').upper() or kind} "
                         f"file?): {_why(e)}") from None


def _channels_last(frame: np.ndarray) -> np.ndarray:
    """(H, W, 2) grey + alpha -> grey; anything else as it is (to_gray_uint8 checks the shape)."""
    return frame[..., 0] if frame.ndim == 3 and frame.shape[2] == 2 else frame


def _check_frame_shape(path: Path, kind: str, shape: Tuple[int, ...]) -> None:
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 2, 3, 4))):
        raise MediaError(f"{kind} '{path}' has frames of shape {tuple(shape)}; expected (H, W) or (H, W, C) with "
                         f"C grey, grey + alpha, RGB or RGBA")


def _in_order(path: Path, kind: str, n: int, decode_all: Callable[[], Frames], indices: Optional[Sequence[int]]
              ) -> Frames:
    """Frames ``indices`` (None: all) of a file that is read front to back: the wanted frames are kept
    as they pass (only those) and yielded in the order asked for."""
    if indices is None:
        yield from decode_all()
        return
    wanted = {int(k) for k in indices}
    kept: Dict[int, np.ndarray] = {}
    last = -1
    for k, frame in decode_all():
        last = k
        if k in wanted:
            kept[k] = frame
            if len(kept) == len(wanted):
                break
    missing = sorted(wanted - set(kept))
    if missing:
        raise MediaError(f"{kind} '{path}' ends after {last + 1} decoded frames (its header says {n}); frame "
                         f"{missing[0]} cannot be read - the file may be truncated")
    for k in indices:
        yield int(k), kept[int(k)]


# --------------------------------------------------------------------------------------------------
# TIFF (tifffile)


def _open_tiff(path: Path) -> Media:
    import tifffile

    def count() -> Tuple[int, Tuple[int, ...]]:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return len(tif.pages), _page_shape(page)

    n, shape = _guard(path, "image", count)
    _check_frame_shape(path, "image", shape)

    def read(indices: Optional[Sequence[int]]) -> Frames:
        with tifffile.TiffFile(path) as tif:
            for k in (range(n) if indices is None else indices):
                page = tif.pages[int(k)]
                frame = _guard(path, "image", lambda: page.asarray())
                if _planar(page):
                    frame = np.moveaxis(frame, 0, -1)
                yield int(k), frame

    return Media(path, "image", n, None, int(shape[0]), int(shape[1]), read)


def _planar(page) -> bool:
    return page.ndim == 3 and page.axes.startswith("S")


def _page_shape(page) -> Tuple[int, ...]:
    shape = tuple(int(s) for s in page.shape)
    return shape[1:] + shape[:1] if _planar(page) else shape


# --------------------------------------------------------------------------------------------------
# Other images (Pillow through imageio)

_EXIF_TURNS = (2, 3, 4, 5, 6, 7, 8)  # EXIF Orientation values that flip or turn the stored picture
_EXIF_QUARTER_TURNS = (5, 6, 7, 8)  # ... of which these swap its height and width
_NOT_RGB_MODES = ("CMYK", "YCbCr", "LAB", "HSV")


def _open_pillow(path: Path) -> Media:
    import imageio.v3 as iio

    props = _guard(path, "image", lambda: iio.improps(path, index=...))
    n = int(props.n_images or 1)
    shape = tuple(props.shape[1:]) if props.is_batch else tuple(props.shape)
    _check_frame_shape(path, "image", shape)
    meta = _guard(path, "image", lambda: iio.immeta(path, index=0, exclude_applied=False))
    # an EXIF orientation (a photo or a phone export) is applied, as every viewer shows the picture
    rotate = meta.get("Orientation") in _EXIF_TURNS
    if meta.get("Orientation") in _EXIF_QUARTER_TURNS:
        shape = (shape[1], shape[0]) + shape[2:]
    # colour spaces whose planes are not R, G, B (CMYK's first three are the inks): converted to RGB
    mode = "RGB" if meta.get("mode") in _NOT_RGB_MODES else None
    fps = None
    if n > 1:
        duration = meta.get("duration")
        fps = 1000.0 / float(duration) if isinstance(duration, (int, float)) and duration > 0 else None

    def read(indices: Optional[Sequence[int]]) -> Frames:
        with _guard(path, "image", lambda: iio.imopen(path, "r")) as f:
            for k in (range(n) if indices is None else indices):
                yield int(k), np.asarray(_guard(path, "image", lambda: f.read(index=int(k), rotate=rotate,
                                                                                mode=mode)))

    return Media(path, "image", n, fps, int(shape[0]), int(shape[1]), read)


# --------------------------------------------------------------------------------------------------
# Video (PyAV through imageio)


def _pyav():
    try:
        import av  # noqa: F401  (imageio's pyav plugin needs it)
    except ImportError:
        raise MediaError("reading video needs PyAV: pip install av (installed with sam3-angio; "
                         "or convert the video to DICOM, .npy or a multi-page TIFF)") from None
    import imageio.v3 as iio

    return iio


def _open_video(path: Path) -> Media:
    iio = _pyav()

    def header() -> Tuple[int, Tuple[int, ...], Optional[float]]:
        props = iio.improps(path, plugin="pyav")
        meta = iio.immeta(path, plugin="pyav")
        fps = meta.get("fps")
        return int(props.shape[0]), tuple(props.shape[1:3]), (float(fps) if fps and fps > 0 else None)

    n, shape, fps = _guard(path, "video", header)

    def decode_all() -> Frames:
        with _guard(path, "video", lambda: iio.imopen(path, "r", plugin="pyav")) as f:
            it = iter(f.iter(format="gray"))
            k = 0
            while True:
                try:
                    frame = next(it)
                except StopIteration:
                    return
                except Exception as e:  # a broken packet mid-file
                    raise MediaError(f"video '{path}' frame {k} cannot be decoded: {_why(e)}") from None
                yield k, frame
                k += 1

    if n <= 0:  # no frame count in the container (MKV, WebM, MPEG): count by decoding once
        n = sum(1 for _ in decode_all())
    if n <= 0:
        raise MediaError(f"video '{path}' holds no frame")
    _check_frame_shape(path, "video", shape)
    return Media(path, "video", n, fps, int(shape[0]), int(shape[1]),
                 lambda indices: _in_order(path, "video", n, decode_all, indices))


def open_media(path: Path, kind: str) -> Media:
    """Open ``path`` (``kind`` "image" or "video") from its header; raises :class:`MediaError`."""
    path = Path(path)
    if kind == "video":
        return _open_video(path)
    if kind != "image":
        raise ValueError(f"open_media: kind {kind!r}; expected 'image' or 'video'")
    return _open_tiff(path) if path.suffix.lower() in _TIFF_SUFFIXES else _open_pillow(path)
