"""Digital tube phantoms with exactly known diameters, for tests and benchmarks of QCA.

A tube is a centreline ``(N, 2)`` (x, y pixels) with a lumen radius per sample (px); its mask holds
the pixels whose centre lies within the local radius of the centreline - the rule the synthetic
generator's segment masks follow (sam3_angio/data/synthetic/xray.py).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree


def densify(xy: np.ndarray, values: np.ndarray, step: float = 0.05) -> Tuple[np.ndarray, np.ndarray]:
    """Resample a polyline ``(N, 2)`` and per-sample ``values (N,)`` every ``step`` px of arc length."""
    xy = np.asarray(xy, np.float64)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))])
    t = np.arange(0.0, s[-1] + 1e-9, step)
    return (np.stack([np.interp(t, s, xy[:, 0]), np.interp(t, s, xy[:, 1])], axis=1),
            np.interp(t, s, np.asarray(values, np.float64)))


def tube_mask(xy: np.ndarray, radius_px: np.ndarray, shape: Tuple[int, int], min_radius_px: float = 0.5) -> np.ndarray:
    """``(H, W)`` bool: pixel centres within ``max(radius, min_radius_px)`` of the centreline ``xy``."""
    dense, r = densify(xy, radius_px)
    r = np.maximum(r, min_radius_px)
    H, W = shape
    reach = float(r.max()) + 1.0
    x0, x1 = max(int(np.floor(dense[:, 0].min() - reach)), 0), min(int(np.ceil(dense[:, 0].max() + reach)) + 1, W)
    y0, y1 = max(int(np.floor(dense[:, 1].min() - reach)), 0), min(int(np.ceil(dense[:, 1].max() + reach)) + 1, H)
    out = np.zeros(shape, bool)
    if x0 >= x1 or y0 >= y1:
        return out
    yy, xx = np.mgrid[y0:y1, x0:x1]
    q = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)
    d, i = cKDTree(dense).query(q, distance_upper_bound=reach)
    ok = np.isfinite(d)
    inside = np.zeros(len(q), bool)
    inside[ok] = d[ok] <= r[i[ok]]
    out[y0:y1, x0:x1] = inside.reshape(yy.shape)
    return out


def cosine_narrowing(s: np.ndarray, center: float, length: float, percent: float) -> np.ndarray:
    """Factor ``(N,)`` on the diameter: ``1 - percent/100 x (1 + cos(pi x)) / 2`` for ``|x| < 1``,
    ``x = (s - center) / (length / 2)`` - the synthetic generator's lesion shape."""
    x = (np.asarray(s, np.float64) - center) / (0.5 * length)
    bump = np.where(np.abs(x) < 1.0, 0.5 * (1.0 + np.cos(np.pi * x)), 0.0)
    return 1.0 - percent / 100.0 * bump


def curved_path(length: float, start: Sequence[float], angle_deg: float, bend_deg: float = 0.0,
                step: float = 0.25) -> np.ndarray:
    """An arc of ``length`` px from ``start`` (x, y) leaving at ``angle_deg``, turning ``bend_deg``
    in all: ``(N, 2)`` x, y every ``step`` px."""
    s = np.arange(0.0, length + 1e-9, step)
    theta = np.deg2rad(angle_deg) + np.deg2rad(bend_deg) * s / max(length, 1e-9)
    dx, dy = np.cos(theta) * step, np.sin(theta) * step
    x = start[0] + np.concatenate([[0.0], np.cumsum(dx[:-1])])
    y = start[1] + np.concatenate([[0.0], np.cumsum(dy[:-1])])
    return np.stack([x, y], axis=1)
