"""The lumen diameter profile along a centreline: sub-pixel edge-to-edge widths perpendicular to it
(the default), or twice the Euclidean distance transform (scipy) for comparison; then smoothing.

Input the padded crop ``(h, w)`` bool and a :class:`Centerline` of N samples; output widths ``(N,)``
in pixels, NaN where no width could be measured (off the mask, no edge within reach).

Why the edge method: a binary mask keeps the lumen edge only to the nearest pixel centre; the edge lies
on average half way between the last pixel inside and the first outside, which is where the
bilinearly interpolated mask crosses 0.5. ``2 x EDT`` at a centreline pixel instead measures to the
first background pixel *centre*: biased by about +0.5 px and quantised to whole pixels (see
docs/qca.md for the comparison on exact tubes and on the generator's masks).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage
from scipy.signal import savgol_filter

from .centerline import Centerline

METHODS = ("edge", "edt", "edt_subpixel")


def edge_widths(crop: np.ndarray, cl: Centerline, max_half_width: float, dt: float = 0.05,
                antialias_sigma: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(width, left, right)`` (N,) px: along each normal, the first 0.5 crossings of the
    interpolated mask on either side of the centreline (``left`` >= 0 along ``+normal``, ``right``
    >= 0 along ``-normal``). ``antialias_sigma > 0`` blurs the mask first (Gaussian, px)."""
    f = crop.astype(np.float64)
    if antialias_sigma > 0:
        f = ndimage.gaussian_filter(f, antialias_sigma, mode="constant")
    t = np.arange(0.0, max_half_width + dt, dt)  # (T,)
    out = []
    for sign in (1.0, -1.0):
        pts = cl.xy[:, None, :] + sign * t[None, :, None] * cl.normal[:, None, :]  # (N, T, 2)
        v = ndimage.map_coordinates(f, [pts[..., 1].ravel(), pts[..., 0].ravel()], order=1,
                                    mode="constant", cval=0.0).reshape(pts.shape[:2])
        below = v < 0.5
        j = np.argmax(below, axis=1)  # first sample outside
        found = below[np.arange(len(j)), j] & (j > 0)
        jj = np.maximum(j, 1)
        v0, v1 = v[np.arange(len(j)), jj - 1], v[np.arange(len(j)), jj]
        frac = np.clip((v0 - 0.5) / np.maximum(v0 - v1, 1e-12), 0.0, 1.0)
        edge = t[jj - 1] + frac * dt
        out.append(np.where(found, edge, np.nan))
    left, right = out
    return left + right, left, right


def edt_widths(edt: np.ndarray, cl: Centerline, subpixel: bool = False) -> np.ndarray:
    """``2 x EDT`` at the centreline samples: the plain way (the nearest pixel's value,
    ``subpixel=False``) or interpolated bicubically at the sub-pixel centreline point."""
    order = 3 if subpixel else 0
    r = ndimage.map_coordinates(edt, [cl.xy[:, 1], cl.xy[:, 0]], order=order, mode="nearest")
    return np.where(r > 0, 2.0 * r, np.nan)


def fill_gaps(d: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaNs (nearest value beyond the ends)."""
    d = np.asarray(d, np.float64)
    ok = np.isfinite(d)
    if ok.all() or not ok.any():
        return d.copy()
    i = np.arange(len(d))
    return np.interp(i, i[ok], d[ok])


def smooth_profile(d: np.ndarray, step: float, window_px: float, polyorder: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing over ``window_px`` of arc length: a local quadratic keeps the depth
    of a narrowing that a moving average of the same length would fill in."""
    d = fill_gaps(d)
    n = int(round(window_px / step)) | 1
    if n <= polyorder + 1 or len(d) <= polyorder + 2:
        return d
    n = min(n, len(d) - (1 - len(d) % 2))
    if n <= polyorder:
        return d
    return savgol_filter(d, n, polyorder, mode="interp")
