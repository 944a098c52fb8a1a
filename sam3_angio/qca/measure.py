"""QCA of one binary mask: centreline, diameter profile, interpolated reference, lesions (MLD, % diameter
stenosis, length, position), in mm when the pixel spacing is known.

``measure_mask(mask (H, W) bool, mm_per_pixel, ostium=(x, y) frame pixels) -> SegmentQCA``: a pure
function of its arguments, what the inference code calls on each predicted segment mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from scipy import ndimage

from .centerline import Centerline, extract_centerline
from .diameter import METHODS, edge_widths, edt_widths, fill_gaps, smooth_profile
from .errors import QCAInputError, SpacingError
from .lesions import lesion_regions, measure_lesions
from .mask import PreparedMask, prepare_mask
from .reference import interpolated_reference
from .result import LesionQCA, SegmentQCA

THIN_PX = 2.5  # median width (px) below which diameters are at the resolution limit of the mask
MIN_WIDTH_PX = 1.0  # the narrowest width a binary mask shows


@dataclass(frozen=True)
class QCAParams:
    """Method settings (defaults validated by bench/bench_qca.py; docs/qca.md)."""

    step_px: float = 0.5  # centreline sample spacing
    method: str = "edge"  # edge (sub-pixel edges, default) | edt (2 x EDT, nearest pixel) | edt_subpixel
    smooth_window: float = 1.0  # Savitzky-Golay window for finding lesions and the reference, in median
    min_window_px: float = 10.0  # vessel diameters, and at least this many pixels
    polyorder: int = 2  # of the Savitzky-Golay filter
    mld_window: float = 0.5  # each lesion's MLD: smoothed over this fraction of its length (0: as above)
    min_mld_window_px: float = 3.0  # and at least this many pixels
    detect_pct: float = 20.0  # a lesion is narrower than the reference by at least this much
    edge_pct: float = 5.0  # its edges: where the lumen is back within this of the reference
    # ... and at least this many px below it: a binary mask shows an edge only to the pixel, so a vessel
    # of constant calibre can gain or lose a whole row of pixels (in a 2-4 px vessel 25-50 % of its
    # diameter), which the smoothed profile reads as a dip of up to ~1.1 px; docs/qca.md "Minimum
    # detectable narrowing"
    min_depth_px: float = 1.25
    reference_degree: int = 1  # polynomial degree of the reference function (1: linear taper)
    reference: str = "interpolated"  # interpolated | global (one diameter for the whole segment: baseline)
    clamp_reference: bool = True  # the reference never exceeds the widest healthy (smoothed) diameter
    end_zone: float = 0.5  # vessel diameters at each end of the mask left out (caps and cuts)
    max_hole_area_px: int = 64  # holes up to this area are filled
    max_iter: int = 20

    def check(self) -> "QCAParams":
        if self.method not in METHODS:
            raise QCAInputError(f"QCA method {self.method!r} unknown; expected one of {', '.join(METHODS)}")
        if self.reference not in ("interpolated", "global"):
            raise QCAInputError(f"QCA reference {self.reference!r} unknown; expected interpolated or global")
        if not (0 < self.step_px <= 2):
            raise QCAInputError(f"step_px must be in (0, 2] px, got {self.step_px}")
        if not (0 < self.detect_pct < 100) or not (0 <= self.edge_pct < self.detect_pct):
            raise QCAInputError(f"need 0 <= edge_pct < detect_pct < 100, got {self.edge_pct}, {self.detect_pct}")
        if not (math.isfinite(self.min_depth_px) and self.min_depth_px >= 0):
            raise QCAInputError(f"min_depth_px must be a finite number of pixels >= 0 (0: no depth rule), "
                                f"got {self.min_depth_px}")
        return self


def check_spacing(mm_per_pixel: Optional[float], name: str = "mm_per_pixel") -> Optional[float]:
    """``None`` (pixels) or a positive finite float; anything else raises :class:`SpacingError`."""
    if mm_per_pixel is None:
        return None
    try:
        v = float(mm_per_pixel)
    except (TypeError, ValueError):
        raise SpacingError(f"{name}: expected a pixel spacing in mm per pixel (a positive number, e.g. 0.25), "
                           f"got {mm_per_pixel!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise SpacingError(f"{name}: expected a pixel spacing in mm per pixel (a positive number, e.g. 0.25), "
                           f"got {mm_per_pixel!r}")
    return v


def _ostium(ostium: Optional[Sequence[float]]) -> Optional[tuple]:
    if ostium is None:
        return None
    try:
        x, y = (float(v) for v in ostium)
    except (TypeError, ValueError):
        raise QCAInputError(f"ostium: expected (x, y) frame pixel coordinates, got {ostium!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise QCAInputError(f"ostium: expected finite (x, y) pixel coordinates, got {ostium!r}")
    return x, y


def _inner(s: np.ndarray, raw: np.ndarray, zone: float = 0.5) -> np.ndarray:
    """Samples away from the mask's ends: within a lumen radius of an end, a rounded cap or an oblique
    cut narrows the mask without narrowing the lumen (QCA analysts likewise start and end the
    analysis inside the vessel)."""
    L = float(s[-1]) if len(s) else 0.0
    ok = np.isfinite(raw)
    if L <= 3.0 or not ok.any():
        return np.ones(len(s), bool)
    med = float(np.median(raw[ok]))
    ends = []
    for near in (s <= 3.0 * med + 1.0, s >= L - 3.0 * med - 1.0):
        sel = near & ok
        ends.append(zone * float(np.median(raw[sel])) + 0.5 if sel.any() else 0.5)
    inner = (s >= ends[0]) & (s <= L - ends[1])
    return inner if inner.sum() >= 3 else np.ones(len(s), bool)


def _widths(crop: np.ndarray, cl: Centerline, edt: np.ndarray, prep: PreparedMask, p: QCAParams):
    """``(raw (N,), left (N,) | None, right (N,) | None)`` px: the unsmoothed diameter profile and, for
    the edge method, the edge offsets; NaN where no lumen width is measurable."""
    left = right = None
    if p.method == "edge":
        raw, left, right = edge_widths(crop, cl, 2.0 * float(edt.max()) + 3.0)
    else:
        raw = edt_widths(edt, cl, subpixel=p.method == "edt_subpixel")
    if prep.touches_edge:  # a width cut off by the frame border is no lumen width
        H, W = prep.frame_shape
        lo, hi = np.array([-0.4, -0.4]), np.array([W - 0.6, H - 0.6])
        xy = cl.xy + np.array(prep.offset[::-1], float)
        for sign, side in ((1.0, left), (-1.0, right)):
            off = np.nan_to_num(0.5 * raw if side is None else side)
            e = xy + sign * off[:, None] * cl.normal
            raw = np.where(np.any((e < lo) | (e > hi), axis=1), np.nan, raw)
    if not np.isfinite(raw).any():  # degenerate (a dot)
        raw = np.full(len(raw), max(2.0 * float(edt.max()) - 1.0, 1.0))
    # A mask cannot show a lumen narrower than one pixel; across a diagonal one-pixel line the
    # interpolated mask dips below 0.5 between pixels and would read less.
    return np.maximum(raw, MIN_WIDTH_PX), left, right


def _wider_end_first(cl: Centerline, raw: np.ndarray, left, right):
    """Reverse the centreline (and profiles) when its last quarter is wider than its first."""
    ok = np.flatnonzero(np.isfinite(raw))
    if len(ok) < 4:
        return cl, raw, left, right
    k = max(2, len(ok) // 4)
    if np.median(raw[ok[-k:]]) <= np.median(raw[ok[:k]]):
        return cl, raw, left, right
    if left is not None:
        left, right = right[::-1].copy(), left[::-1].copy()
    return cl.reversed(), raw[::-1].copy(), left, right


def _shape_flags(cl: Centerline, med: float, hinted: bool, flags: List[str], warnings: List[str]) -> None:
    if cl.branch_s:
        flags.append("bifurcation")
        warnings.append(f"{len(cl.branch_s)} side branch(es) ignored: measured the main path (the longest path "
                        f"through the skeleton{', from the end nearest the ostium' if hinted else ''}); the "
                        f"take-off zones are left out of the reference fit")
    if med < THIN_PX:
        flags.append("thin")
        warnings.append(f"the vessel is about {med:.1f} px wide: diameters are at the resolution limit of the mask")
    if cl.length < 3.0 * med:
        flags.append("short")
        warnings.append(f"the centreline ({cl.length:.1f} px) is shorter than 3 vessel diameters: the reference "
                        f"diameter rests on very little healthy vessel")


def _open_end(valid: np.ndarray, a: int, b: int) -> Optional[str]:
    """Which end of the measured profile the lesion samples ``a:b`` run into (no valid sample beyond)."""
    at_start, at_end = not valid[:a].any(), not valid[b:].any()
    return "both" if at_start and at_end else "start" if at_start else "end" if at_end else None


def _open_end_flag(lesions: List[LesionQCA], flags: List[str], warnings: List[str]) -> None:
    open_ = [(i, L.open_end) for i, L in enumerate(lesions, 1) if L.open_end]
    if not open_:
        return
    flags.append("lesion_at_mask_end")
    which = ", ".join(f"lesion {i} ({end})" for i, end in open_)
    warnings.append(f"{which} run(s) into an end of the mask: no healthy vessel beyond it there, so its reference "
                    f"is extrapolated, and a mask cut or tapered at a junction looks the same as a narrowing; "
                    f"check it on the figure")


def measure_mask(
    mask: np.ndarray,
    mm_per_pixel: Optional[float] = None,
    ostium: Optional[Sequence[float]] = None,
    *,
    source: str = "mask",
    meta: Optional[Dict[str, Any]] = None,
    params: Optional[QCAParams] = None,
) -> SegmentQCA:
    """QCA of the vessel or segment ``mask (H, W)`` (bool, or two-valued with background 0).

    ``mm_per_pixel``: pixel spacing at the vessel (mm); ``None`` reports pixels. ``ostium``: ``(x, y)``
    frame pixels near the proximal end; the centreline starts at the skeleton end nearest to it
    (without it: at the wider end). ``source`` names the input in messages and in the result;
    ``meta`` is copied into the result (frame, cass_segment, ...). Raises a :class:`QCAInputError`
    subclass on an empty or non-binary mask or a bad spacing.
    """
    p = (params or QCAParams()).check()
    spacing = check_spacing(mm_per_pixel)
    ost = _ostium(ostium)
    prep = prepare_mask(mask, name=source, max_hole_area_px=p.max_hole_area_px)
    r0, c0 = prep.offset
    flags, warnings = list(prep.flags), list(prep.warnings)

    # centreline and diameter profile, in crop pixels
    edt = ndimage.distance_transform_edt(prep.crop)
    cl = extract_centerline(prep.crop, step=p.step_px, ostium_xy=None if ost is None else (ost[0] - c0, ost[1] - r0),
                            edt=edt)
    raw, left, right = _widths(prep.crop, cl, edt, prep, p)
    if ost is None:
        cl, raw, left, right = _wider_end_first(cl, raw, left, right)
    s, n = cl.s, len(raw)
    valid = np.isfinite(raw) & _inner(s, raw, p.end_zone)
    if not valid.any():
        valid = np.isfinite(raw)
    raw = np.where(valid, raw, np.nan)
    med = float(np.nanmedian(raw))
    window = max(p.min_window_px, p.smooth_window * med)
    d = smooth_profile(raw, cl.step, window, p.polyorder)
    _shape_flags(cl, med, ost is not None, flags, warnings)

    # interpolated reference and lesions
    exclude = np.zeros(n, bool)
    for bs, br in zip(cl.branch_s, cl.branch_radius):
        exclude |= np.abs(s - bs) <= 2.0 * br + 1.0
    fit = interpolated_reference(
        s, d, valid=valid, exclude=exclude, degree=p.reference_degree, detect_pct=p.detect_pct,
        edge_pct=p.edge_pct, margin_px=0.5 * med, max_iter=p.max_iter, clamp=p.clamp_reference,
        min_depth_px=p.min_depth_px,
    )
    warnings.extend(fit.warnings)
    ref, regions = fit.reference, fit.regions
    if p.reference == "global":  # baseline: one reference diameter (the median of the healthy samples)
        ref = np.full(n, float(np.median(d[fit.used])) if fit.used.any() else med)
        regions = lesion_regions(d, ref, p.detect_pct, p.edge_pct, valid, p.min_depth_px)
    ref = np.maximum(ref, 1e-6)
    if p.mld_window > 0:
        # Inside a lesion, a window as long as the lesion itself would fill in its narrowest part:
        # the profile there is smoothed over a fraction of the lesion's length instead.
        d = d.copy()
        for a, b in regions:
            w = min(max(p.min_mld_window_px, p.mld_window * (s[b - 1] - s[a])), window)
            d[a:b] = smooth_profile(raw, cl.step, w, p.polyorder)[a:b]
    les_px = measure_lesions(s, d, ref, regions, valid)

    if les_px:  # the segment reports its worst lesion
        top = max(les_px, key=lambda L: L.percent_diameter_stenosis)
        worst = top.index
        seg_ref, seg_mld, seg_pct = top.reference, top.mld, top.percent_diameter_stenosis
    else:  # no lesion: the mean reference, and the point narrowest relative to it
        worst = int(np.argmin(np.where(valid, d / ref, np.inf)))
        seg_ref = float(np.mean(ref[valid]))
        seg_mld, seg_pct = float(d[worst]), float(100.0 * (1.0 - d[worst] / ref[worst]))

    # to frame pixels and the output units
    k = spacing if spacing is not None else 1.0
    units = "mm" if spacing is not None else "px"
    xy = cl.xy + np.array([c0, r0], float)
    lesions = [
        LesionQCA(
            percent_diameter_stenosis=L.percent_diameter_stenosis, mld=L.mld * k, reference_diameter=L.reference * k,
            lesion_length=L.length * k, position=L.position * k, start=L.start * k, end=L.end * k,
            mld_xy=(float(xy[L.index, 0]), float(xy[L.index, 1])), units=units, index=L.index,
            open_end=_open_end(valid, L.i0, L.i1),
        )
        for L in les_px
    ]
    _open_end_flag(lesions, flags, warnings)
    if left is None:
        left = right = 0.5 * fill_gaps(raw)
    edges = (xy + left[:, None] * cl.normal, xy - right[:, None] * cl.normal)
    return SegmentQCA(
        source=source, units=units, mm_per_pixel=spacing, reference_diameter=seg_ref * k, mld=seg_mld * k,
        percent_diameter_stenosis=float(seg_pct), centerline_length=cl.length * k, lesions=lesions,
        orientation="ostium_hint" if ost is not None else "wider_end", n_side_branches=len(cl.branch_s),
        flags=flags, warnings=warnings, meta=dict(meta or {}),
        reference_fit={"method": p.reference, "degree": fit.degree, "iterations": fit.iterations,
                       "converged": fit.converged, "healthy_fraction": round(float(fit.used.mean()), 3)},
        s=s * k, diameter=d * k, diameter_raw=raw * k, reference=ref * k, centerline_xy=xy, edges_xy=edges,
        worst_index=worst,
    )


__all__ = ["QCAParams", "measure_mask", "check_spacing"]
