"""COCO polygons checked, then rasterised by pycocotools: the one place where ground truth (data/) and
predictions (evaluation/) turn ``[[x0, y0, x1, y1, ...], ...]`` (pixels, COCO) into one RLE.

Input: a list of polygons, each a flat list of >= 3 (x, y) pairs in pixel coordinates of an
``height x width`` image. Output: the compressed RLE of their union, ``{"size": [h, w], "counts": bytes}``.

Why the checks come first (pycocotools 2.0.11, a 512 x 512 image, measured): ``frPyObjects`` walks every
edge at 5 samples a pixel and allocates for the whole walk, so the memory it takes grows with the
coordinate range, not with the image: one vertex at 1e7 takes 4.5 s; one at 1e9, or a NaN (cast to an
integer in C), segfaults under a 4 GB address-space limit and, without one, grew a process to 19 GB
until the OOM killer fired. It also takes an odd-length list (the last number is dropped) and reads a
4-number polygon as a box, and numpy turns the string ``"5"`` into 5.0. So a polygon is refused, with
:class:`PolygonError` saying which polygon and coordinate, when a coordinate is not a number (strings and
booleans included), NaN or infinite, the count is odd or below 6, a vertex lies more than one image size
outside the image (x outside ``[-w, 2w]``, y outside ``[-h, 2h]``), or the outlines together are longer
than ``MAX_OUTLINE_FRAMES * (w + h)`` pixels (a bound on pycocotools' walk however many vertices come).

Refused, not clipped: moving a far vertex onto a bound would silently change the shape inside the image
(the edges towards it change direction), and exact polygon clipping buys nothing real: no annotation or
model output has a vertex a whole image away, so one that does is a broken file (wrong units, a
corrupted number) that the user should hear about. ARCADE's polygons lie within [0, 512] on 512 x 512
images and their longest outline is 1117 px (2.2 x (w + h) / 2), far inside both bounds.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, List

import numpy as np
from pycocotools import mask as mask_utils

RLE = Dict[str, Any]

# Outline length allowed per annotation, in units of (width + height): 100 x is ~50 x ARCADE's longest.
MAX_OUTLINE_FRAMES = 100


class PolygonError(ValueError):
    """A polygon list that cannot be rasterised; the message names the polygon and the coordinate.

    Callers add where it came from (ground truth: the file and annotation id; predictions: the record).
    """


def _coordinates(p: Any, k: int) -> np.ndarray:
    """One polygon -> ``(n, 2)`` float64 (x, y), or :class:`PolygonError`."""
    if not isinstance(p, (list, tuple)):
        raise PolygonError(f"polygon {k} is a {type(p).__name__}, expected a flat list [x0, y0, x1, y1, ...]")
    if not set(map(type, p)) <= {int, float}:  # fast path above; numpy scalars are numbers too
        for j, v in enumerate(p):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
                raise PolygonError(
                    f"polygon {k} coordinate {j} is {v!r} ({type(v).__name__}), expected a number"
                )
    if len(p) % 2:
        raise PolygonError(f"polygon {k} has {len(p)} numbers, an odd count (expected x, y pairs)")
    if len(p) < 6:
        raise PolygonError(f"polygon {k} has {len(p) // 2} point(s), at least 3 (x, y) pairs are needed")
    xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
    bad = ~np.isfinite(xy)
    if bad.any():
        j = int(np.flatnonzero(bad.reshape(-1))[0])
        raise PolygonError(f"polygon {k} coordinate {j} is {p[j]!r}, expected a finite number")
    return xy


def check_polygons(polys: Any, height: int, width: int) -> List[List[float]]:
    """Validate COCO polygons of an ``height x width`` image; return them as lists of floats.

    Raises :class:`PolygonError` for anything pycocotools would crash on, blow up on or misread (see the
    module docstring); the returned lists are safe to give ``mask_utils.frPyObjects``.
    """
    if not isinstance(polys, (list, tuple)) or not polys:
        found = f"an empty {type(polys).__name__}" if isinstance(polys, (list, tuple)) else type(polys).__name__
        raise PolygonError(f"polygons must be a non-empty list of [x0, y0, x1, y1, ...] lists, found {found}")
    out: List[List[float]] = []
    outline = 0.0
    for k, p in enumerate(polys):
        xy = _coordinates(p, k)
        lo = np.array([-width, -height], dtype=np.float64)
        hi = np.array([2 * width, 2 * height], dtype=np.float64)
        far = ((xy < lo) | (xy > hi)).any(axis=1)
        if far.any():
            x, y = xy[int(np.flatnonzero(far)[0])]
            raise PolygonError(
                f"polygon {k} has a vertex at ({x:.6g}, {y:.6g}), more than one image size outside the "
                f"{width}x{height} image (x must lie in [{-width}, {2 * width}], y in [{-height}, {2 * height}]); "
                f"wrong units or a corrupted number?"
            )
        # pycocotools walks each edge in max(|dx|, |dy|) steps (x5): bound the whole walk
        outline += float(np.abs(np.diff(xy, axis=0, append=xy[:1])).max(axis=1).sum())
        out.append(xy.reshape(-1).tolist())
    limit = MAX_OUTLINE_FRAMES * (width + height)
    if outline > limit:
        raise PolygonError(
            f"the polygons' outline is {math.ceil(outline)} px long, more than {limit} px "
            f"({MAX_OUTLINE_FRAMES} x (width + height)); not an outline of this image's objects"
        )
    return out


def polygons_to_rle(polys: Any, height: int, width: int) -> RLE:
    """COCO polygons (pixels) -> one compressed RLE, their union; checked first (:func:`check_polygons`)."""
    clean = check_polygons(polys, height, width)
    return mask_utils.merge(mask_utils.frPyObjects(clean, height, width))
