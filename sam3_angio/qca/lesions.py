"""Lesions on a diameter profile: runs where the lumen is narrower than the reference by at least the
detection threshold, each widened to its edges, nearby runs merged, each measured at its own MLD.

Input arc length ``s (N,)``, diameters ``d (N,)`` and reference ``ref (N,)`` in pixels; output
:class:`LesionPx` records in pixels (the caller converts to mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class LesionPx:
    index: int  # sample of the MLD
    mld: float  # px
    reference: float  # interpolated reference diameter at the MLD, px
    percent_diameter_stenosis: float
    start: float  # arc length of the lesion's proximal edge, px
    end: float  # distal edge, px
    position: float  # arc length of the MLD from the start of the centreline, px
    i0: int = 0  # sample range [i0, i1) of the lesion
    i1: int = 0

    @property
    def length(self) -> float:
        return self.end - self.start


def runs(flag: np.ndarray) -> List[Tuple[int, int]]:
    """Maximal runs ``[i0, i1)`` where ``flag`` is True."""
    f = np.concatenate([[False], np.asarray(flag, bool), [False]])
    edges = np.flatnonzero(f[1:] != f[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def lesion_regions(d: np.ndarray, ref: np.ndarray, detect_pct: float, edge_pct: float,
                   valid: Optional[np.ndarray] = None, min_depth_px: float = 0.0) -> List[Tuple[int, int]]:
    """Sample ranges ``[i0, i1)`` of lesions: each run narrower than ``(1 - detect_pct/100) x ref``
    and at least ``min_depth_px`` below ``ref``, grown while narrower than ``(1 - edge_pct/100) x ref``;
    overlapping regions merge."""
    ratio = d / np.maximum(ref, 1e-9)
    core = (ratio < 1.0 - detect_pct / 100.0) & (ref - d >= min_depth_px)
    if valid is not None:
        core &= valid
    below_edge = ratio < 1.0 - edge_pct / 100.0
    out: List[Tuple[int, int]] = []
    for a, b in runs(core):
        while a > 0 and below_edge[a - 1]:
            a -= 1
        while b < len(d) and below_edge[b]:
            b += 1
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def measure_lesions(s: np.ndarray, d: np.ndarray, ref: np.ndarray, regions: List[Tuple[int, int]],
                    valid: Optional[np.ndarray] = None) -> List[LesionPx]:
    """One :class:`LesionPx` per region: MLD = the smallest diameter in it, reference = the reference
    function at the MLD (the interpolated reference diameter), edges at the region's ends."""
    out = []
    for a, b in regions:
        seg = d[a:b].copy()
        if valid is not None and valid[a:b].any():
            seg[~valid[a:b]] = np.inf
        i = a + int(np.argmin(seg))
        mld, r = float(d[i]), float(ref[i])
        step = float(s[1] - s[0]) if len(s) > 1 else 0.0
        start = float(s[a])
        end = float(s[b - 1]) + (step if b - 1 < len(s) - 1 else 0.0)
        out.append(LesionPx(
            index=i, mld=mld, reference=r, percent_diameter_stenosis=float(100.0 * (1.0 - mld / max(r, 1e-9))),
            start=start, end=min(end, float(s[-1])), position=float(s[i]), i0=a, i1=b,
        ))
    return out
