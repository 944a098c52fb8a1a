"""Run-length-encoded (COCO RLE) masks: validation, conversion and set operations.

All pixel metrics work on RLE through pycocotools' C routines (no decoding to dense masks), so they
stay cheap next to COCOeval. A compressed RLE is ``{"size": [h, w], "counts": bytes}`` in column-major
(Fortran) order, as pycocotools writes it. Polygons are checked and rasterised by
:mod:`sam3_angio.data.polygons` (one function for ground truth and predictions).

The one hand-written piece is :func:`run_lengths`, a check that runs before pycocotools sees a
compressed RLE from a prediction file, because pycocotools does not validate one (2.0.11, measured on
32 x 32 masks): ``area()`` of counts with characters outside the RLE alphabet returns 4294967282 and of
counts that cover too few pixels a partial sum, both without an error; ``iou()`` and ``merge()`` on an
RLE whose runs do not sum to h*w (too few or too many) had not returned after 20 s (killed);
``decode()`` raises ``ValueError`` for too many pixels, a truncated value or a bad character, but for
too few pixels returns a mask whose unset tail is uninitialised memory (169 pixels on for counts that
``area()`` puts at 26). pycocotools has no call that returns the runs, so they are decoded here.
Uncompressed RLE (a list of ints) is checked with numpy and encoded by ``frPyObjects``.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import pycocotools.mask as mask_utils

from .polygons import PolygonError, polygons_to_rle as _polygons_to_rle

RLE = Dict[str, Any]


class GeometryError(ValueError):
    """A mask or polygon that cannot be used; ``reason`` is the stable key counted in metrics.json."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def run_lengths(counts: bytes) -> np.ndarray:
    """Decode compressed RLE ``counts`` to run lengths (int64, alternating background/foreground), to
    check them before pycocotools sees them (why: the module docstring).

    Mirrors pycocotools' ``rleFrString``: 5 data bits a character (offset 48), bit 0x20 = more
    characters follow, bit 0x10 of the last character = negative; from the fourth run on, a value is
    a delta to the run two places back. Raises ``ValueError`` on characters outside that alphabet or a
    truncated value.
    """
    b = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    if b.min() < 0 or b.max() > 63:
        raise ValueError("counts holds characters outside the RLE alphabet ('0'..'o')")
    more = (b & 0x20) != 0
    if more[-1]:
        raise ValueError("counts ends in the middle of a value (truncated string)")
    ends = np.flatnonzero(~more)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    k = np.arange(b.size) - np.repeat(starts, ends - starts + 1)
    if k.max() > 10:
        raise ValueError("counts holds a value longer than 10 characters (not an RLE string)")
    x = np.add.reduceat((b & 0x1F) << (5 * k), starts)
    neg = (b[ends] & 0x10) != 0
    if neg.any():
        x[neg] |= np.left_shift(np.int64(-1), 5 * (k[ends][neg] + 1))
    runs = x.copy()
    if x.size > 3:  # rleFrString adds cnts[m-2] only for m > 2
        runs[3::2] = x[1] + np.cumsum(x[3::2])
    if x.size > 4:
        runs[4::2] = x[2] + np.cumsum(x[4::2])
    return runs


def check_rle(seg: Any, height: int, width: int) -> RLE:
    """Validate an RLE given as a COCO ``segmentation`` and return it compressed.

    Accepts compressed (``counts`` str/bytes) and uncompressed (``counts`` list of ints) RLE. The run
    lengths must be non-negative and sum to ``height * width``: pycocotools' C code does not check
    this, and a wrong total makes its IoU loop read past the runs or never end.
    """
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise GeometryError("malformed_rle", "an RLE needs 'size' [h, w] and 'counts'")
    size = seg["size"]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
    ):
        raise GeometryError("malformed_rle", f"RLE 'size' must be [h, w] integers, found {size!r}")
    if list(size) != [height, width]:
        raise GeometryError(
            "rle_size_mismatch",
            f"RLE size {list(size)} differs from the image size [{height}, {width}] (h, w)",
        )
    counts = seg["counts"]
    if isinstance(counts, list):
        try:
            runs = np.asarray(counts, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise GeometryError("malformed_rle", "uncompressed RLE 'counts' must be integers") from None
        if runs.ndim != 1:
            raise GeometryError("malformed_rle", "uncompressed RLE 'counts' must be a flat list")
        _check_runs(runs, height, width)
        return mask_utils.frPyObjects({"size": [height, width], "counts": [int(v) for v in runs]}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    if not isinstance(counts, bytes):
        raise GeometryError("malformed_rle", f"RLE 'counts' must be a string or a list, found {type(counts).__name__}")
    try:
        runs = run_lengths(counts)
    except ValueError as e:
        raise GeometryError("malformed_rle", f"RLE 'counts' is not valid: {e}") from None
    _check_runs(runs, height, width)
    return {"size": [height, width], "counts": counts}


def _check_runs(runs: np.ndarray, height: int, width: int) -> None:
    if runs.size and runs.min() < 0:
        raise GeometryError("malformed_rle", "RLE has a negative run length")
    total = int(runs.sum())
    if total != height * width:
        raise GeometryError(
            "malformed_rle",
            f"RLE runs cover {total} pixels, the image has {height}x{width} = {height * width}",
        )


def polygons_to_rle(polys: Any, height: int, width: int) -> RLE:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (pixels) -> one compressed RLE (their union).

    The check and rasterisation are :func:`sam3_angio.data.polygons.polygons_to_rle` (shared with the
    data importers); a refused polygon becomes ``GeometryError("malformed_polygon", ...)``.
    """
    try:
        return _polygons_to_rle(polys, height, width)
    except PolygonError as e:
        raise GeometryError("malformed_polygon", str(e)) from None


def to_rle(seg: Any, height: int, width: int) -> RLE:
    """Any COCO ``segmentation`` (polygons or RLE) -> validated compressed RLE."""
    if isinstance(seg, dict):
        return check_rle(seg, height, width)
    if isinstance(seg, list):
        return polygons_to_rle(seg, height, width)
    raise GeometryError(
        "malformed_rle" if isinstance(seg, (str, bytes)) else "malformed_polygon",
        f"a segmentation must be an RLE dict or a list of polygons, found {type(seg).__name__}",
    )


def empty_rle(height: int, width: int) -> RLE:
    return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))


def union(rles: Sequence[RLE], height: int, width: int) -> RLE:
    """Union of masks of one image (an empty mask for no input)."""
    if not rles:
        return empty_rle(height, width)
    if len(rles) == 1:
        return rles[0]
    return mask_utils.merge(list(rles), intersect=False)


def area(rle: RLE) -> int:
    return int(mask_utils.area(rle))


def intersection_area(a: RLE, b: RLE) -> int:
    return int(mask_utils.area(mask_utils.merge([a, b], intersect=True)))


def dice_iou(a: RLE, b: RLE, empty: float = 1.0) -> tuple:
    """(Dice, IoU) of two masks; ``empty`` when both are empty (nothing to find, nothing found)."""
    sa, sb = area(a), area(b)
    if sa + sb == 0:
        return empty, empty
    inter = intersection_area(a, b) if sa and sb else 0
    return 2.0 * inter / (sa + sb), inter / (sa + sb - inter)


def f1(a: RLE, b: RLE) -> float:
    """Pixel F1 of two masks: ``2 TP / (2 TP + FP + FN)`` (= Dice), 0 when they do not overlap.

    Equal to the ARCADE script's ``2 P R / (P + R)`` with ``P = TP / |pred|``, ``R = TP / |gt|``,
    which it computes on polygon areas and sets to 0 when ``TP == 0``.
    """
    sa, sb = area(a), area(b)
    if sa == 0 or sb == 0:
        return 0.0
    inter = intersection_area(a, b)
    return 0.0 if inter == 0 else 2.0 * inter / (sa + sb)
