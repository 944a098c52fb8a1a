"""The interpolated reference diameter: a robust polynomial fit to the diameter profile outside the
lesions, refitted until the set of lesions stops changing (the method of QCA systems such as CAAS:
Reiber et al., Circulation 1985; Gronenschild et al., Cathet Cardiovasc Diagn 1994).

Input arc length ``s (N,)`` and diameters ``d (N,)`` in pixels; output the reference function ``(N,)``
px and the lesion regions it was fitted around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .lesions import lesion_regions, runs

MIN_USED_FRACTION = 0.2  # a fit on less of the segment than this falls back to a lower degree


@dataclass
class ReferenceFit:
    reference: np.ndarray  # (N,) px
    coef: np.ndarray  # polynomial in s (px), highest power first
    degree: int
    used: np.ndarray  # (N,) bool: samples the final fit used
    regions: List[Tuple[int, int]]  # lesion regions [i0, i1) excluded from it
    iterations: int
    converged: bool
    warnings: List[str] = field(default_factory=list)


def _robust_polyfit(s: np.ndarray, d: np.ndarray, w: np.ndarray, degree: int, n_iter: int = 5) -> np.ndarray:
    """Least squares with Tukey bisquare reweighting (c = 4.685 robust sigmas)."""
    sc = s.mean(), max(float(s.std()), 1e-9)
    x = (s - sc[0]) / sc[1]
    ww = w.astype(np.float64)
    coef = np.polyfit(x, d, degree, w=np.sqrt(ww))
    for _ in range(n_iter):
        res = d - np.polyval(coef, x)
        sig = 1.4826 * np.median(np.abs(res[ww > 0])) + 1e-9
        u = res / (4.685 * sig)
        bis = np.where(np.abs(u) < 1.0, (1.0 - u**2) ** 2, 0.0)
        w2 = ww * bis
        if np.count_nonzero(w2) <= degree + 1:
            break
        coef = np.polyfit(x, d, degree, w=np.sqrt(w2))
    return _compose(np.poly1d(coef), sc)


def _compose(p: np.poly1d, sc: Tuple[float, float]) -> np.ndarray:
    """Coefficients in s of ``p((s - mean) / std)``."""
    lin = np.poly1d([1.0 / sc[1], -sc[0] / sc[1]])
    out = np.poly1d([0.0])
    for k, c in enumerate(p.coefficients[::-1]):
        out = out + c * lin**k
    return out.coefficients


def interpolated_reference(
    s: np.ndarray,
    d: np.ndarray,
    valid: Optional[np.ndarray] = None,
    exclude: Optional[np.ndarray] = None,
    degree: int = 1,
    detect_pct: float = 20.0,
    edge_pct: float = 5.0,
    margin_px: float = 0.0,
    max_iter: int = 20,
    clamp: bool = True,
    min_depth_px: float = 0.0,
) -> ReferenceFit:
    """Fit the reference function to ``d`` outside the lesions (and outside ``exclude``, e.g. side
    branch take-offs), find the lesions against it, and repeat until they are the same twice.

    A lesion region is where the profile is narrower than the reference by ``detect_pct`` percent,
    grown to where it is within ``edge_pct``; ``margin_px`` more on each side is left out of the fit.
    """
    n = len(d)
    valid = np.isfinite(d) if valid is None else (valid & np.isfinite(d))
    base = valid & (~exclude if exclude is not None else True)
    if base.sum() < max(3, degree + 2):
        base = valid
    warnings: List[str] = []
    step = float(s[1] - s[0]) if n > 1 else 1.0
    margin = int(round(margin_px / step))

    def evaluate(coef: np.ndarray, used: np.ndarray) -> np.ndarray:
        ref = np.polyval(coef, s)
        if clamp and used.any():  # extrapolation over a lesion never exceeds the widest healthy lumen
            ref = np.minimum(ref, float(d[used].max()))
        return ref

    def fit(used: np.ndarray) -> Tuple[np.ndarray, int]:
        deg = degree
        while deg > 0 and (used.sum() < max(deg + 2, MIN_USED_FRACTION * n) or np.ptp(s[used]) < 1e-6):
            deg -= 1
        if used.sum() == 0:
            return np.array([float(np.nanpercentile(d[valid], 90)) if valid.any() else 0.0]), 0
        return _robust_polyfit(s[used], d[used], np.ones(int(used.sum())), deg), deg

    used = base.copy()
    coef, deg = fit(used)
    regions: List[Tuple[int, int]] = []
    converged = False
    it = 0
    # Two stages: the lesion set settles on the relative rule alone, then narrowings shallower than
    # min_depth_px are dropped and the fit settles again. Starting with the depth rule would let a long
    # lesion that pulls the first (all-samples) fit down hide under its own reference.
    for depth in ((0.0, min_depth_px) if min_depth_px > 0 else (0.0,)):
        converged = False
        for k in range(1, max_iter + 1):
            it += 1
            ref = evaluate(coef, used)
            regions = lesion_regions(d, ref, detect_pct, edge_pct, valid, depth)
            excl = np.zeros(n, bool)
            for a, b in regions:
                excl[max(0, a - margin): min(n, b + margin)] = True
            new_used = base & ~excl
            if new_used.sum() < 3:
                # lesions cover (nearly) the whole segment: the widest fifth stands in for healthy vessel
                thr = np.percentile(d[base], 80)
                new_used = base & (d >= thr)
                if "widest" not in " ".join(warnings):
                    warnings.append("the lesion(s) cover nearly the whole segment: the reference is fitted to "
                                    "its widest fifth")
            if np.array_equal(new_used, used) and (k > 1 or depth > 0):
                converged = True
                break
            used = new_used
            coef, deg = fit(used)
    ref = evaluate(coef, used)
    if deg < degree:
        warnings.append(f"reference fitted with a degree-{deg} polynomial (asked {degree}): too little healthy "
                        f"vessel outside the lesion(s) for more")
    if used.sum() < MIN_USED_FRACTION * n:
        warnings.append(f"only {100.0 * used.sum() / max(n, 1):.0f}% of the segment is outside the lesion(s): "
                        f"the reference diameter is extrapolated and less reliable")
    if not converged:
        warnings.append(f"the lesion set did not settle in {max_iter} reference fits; the last fit is reported")
    return ReferenceFit(reference=ref, coef=coef, degree=deg, used=used, regions=regions, iterations=it,
                        converged=converged, warnings=warnings)


__all__ = ["ReferenceFit", "interpolated_reference", "runs"]
