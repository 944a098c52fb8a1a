"""X-ray image formation for synthetic angiograms: line integrals of attenuation (Beer-Lambert),
focal-spot blur, Poisson quantum noise, log display with vessels dark.

Everything attenuates as ``mu * chord length`` (1/mm * mm): the thorax, lungs, heart, spine and ribs
through analytic shapes traced along the real perspective rays; vessels and the catheter as tubes
around their projected centerlines, where a ray at distance d from the axis of a tube of radius r
crosses ``2 sqrt(r^2 - d^2) / sin(alpha)`` mm of lumen (alpha: angle between ray and vessel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .anatomy import Anatomy
from .projection import CArmView

# Linear attenuation coefficients (1/mm) at an effective ~60 keV angiographic spectrum.
MU_TISSUE = 0.019
MU_BONE_EXTRA = 0.008  # vertebral body minus the soft tissue it displaces
MU_RIB_EXTRA = 0.009
# Lung relative to soft tissue. Physically about 0.25; angiography systems compress the lung /
# mediastinum range (log + harmonisation), so the effective value in the displayed image is higher.
LUNG_DENSITY = 0.7

_MIN_RADIUS_PX = 0.8  # thinner tubes are drawn at this width with the same integral attenuation


@dataclass
class Tube:
    """A projected tube: arrays of length N along its centerline (pixel units unless stated)."""

    xy: np.ndarray  # (N, 2) x = column, y = row
    r_px: np.ndarray  # (N,) lumen radius in pixels
    mm_per_px: np.ndarray  # (N,) mm per pixel at each sample's depth
    mu: np.ndarray  # (N,) attenuation per mm of chord: mu * contrast fill / sin(alpha)
    label: np.ndarray  # (N,) int label (CASS id; 0 other vessel; -1 catheter; -2 bone)
    breaks: Optional[np.ndarray] = None  # (N-1,) True where sample i and i+1 are not joined


def project_tube(
    view: CArmView,
    points: np.ndarray,
    radius_mm: np.ndarray,
    mu: np.ndarray,
    label: np.ndarray,
    breaks: Optional[np.ndarray] = None,
) -> Tube:
    """3D centerline ``points (N, 3)`` mm with lumen ``radius_mm (N,)`` -> projected :class:`Tube`.
    ``mu (N,)`` is attenuation per mm of lumen before the foreshortening factor ``1 / sin(alpha)``."""
    xy, depth = view.project(points)
    ppm = view.pixels_per_mm(depth)
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    ray = points - view.source
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    sin_a = np.linalg.norm(np.cross(tangent, ray), axis=1)
    return Tube(
        xy=xy, r_px=radius_mm * ppm, mm_per_px=1.0 / ppm, mu=mu / np.maximum(sin_a, 0.4),
        label=np.asarray(label), breaks=breaks,
    )


@dataclass
class TubeRender:
    attenuation: np.ndarray  # (H, W) float32, sum of mu * chord over tubes
    masks: Dict[int, np.ndarray]  # label -> (H, W) bool lumen (only when masks were asked for); may overlap
    radius_mm: Optional[np.ndarray]  # (H, W) float32 largest lumen radius covering each pixel


@dataclass
class _Nearest:
    """The P image pixels within reach of a polyline, each with its nearest centerline piece ``(a, b)``
    (sample indices; ``a == b``: the sample itself) and the point ``t`` (0 at a, 1 at b) on it."""

    ys: np.ndarray  # (P,) int image row
    xs: np.ndarray  # (P,) int image column
    d: np.ndarray  # (P,) px distance to the piece
    a: np.ndarray  # (P,) int
    b: np.ndarray  # (P,) int
    t: np.ndarray  # (P,) float in [0, 1]

    def lerp(self, v: np.ndarray) -> np.ndarray:
        """Per-sample values ``(N,)`` -> their value at each pixel's nearest point ``(P,)``."""
        return v[self.a] * (1.0 - self.t) + v[self.b] * self.t

    def label(self, labels: np.ndarray) -> np.ndarray:
        """``(P,)`` label of the nearer end of each pixel's piece (a junction piece splits at its middle)."""
        return np.where(self.t < 0.5, labels[self.a], labels[self.b])


def _nearest_pieces(xy: np.ndarray, breaks: Optional[np.ndarray], reach: float, shape: Tuple[int, int],
                    margin: int) -> Optional[_Nearest]:
    """Pixels of the ``(H, W)`` image within ``reach`` px of the polyline ``xy (N, 2)`` and their nearest
    piece; None when there are none.

    Rasterise the samples into a crop (up to ``margin`` px outside the image), take the nearest sample of
    every pixel from a Euclidean distance transform, then the exact distance to the two pieces around it.
    """
    H, W = shape
    n = len(xy)
    x0 = int(max(np.floor(xy[:, 0].min() - reach), -margin))
    x1 = int(min(np.ceil(xy[:, 0].max() + reach) + 1, W + margin))
    y0 = int(max(np.floor(xy[:, 1].min() - reach), -margin))
    y1 = int(min(np.ceil(xy[:, 1].max() + reach) + 1, H + margin))
    # the part of the crop inside the image
    ix0, ix1, iy0, iy1 = max(x0, 0), min(x1, W), max(y0, 0), min(y1, H)
    if ix0 >= ix1 or iy0 >= iy1:
        return None
    ij = np.rint(xy - (x0, y0)).astype(np.int64)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < x1 - x0) & (ij[:, 1] >= 0) & (ij[:, 1] < y1 - y0)
    if not ok.any():
        return None
    idxmap = np.full((y1 - y0, x1 - x0), -1, np.int64)
    idxmap[ij[ok, 1], ij[ok, 0]] = np.nonzero(ok)[0]
    dist, ind = ndimage.distance_transform_edt(idxmap < 0, return_indices=True)
    sl = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
    near = dist[sl] <= reach
    if not near.any():
        return None
    yy, xx = np.nonzero(near)
    i = idxmap[ind[0][sl][yy, xx], ind[1][sl][yy, xx]]
    px, py = (xx + ix0).astype(np.float64), (yy + iy0).astype(np.float64)
    cx, cy = xy[:, 0], xy[:, 1]
    # Distance to the centerline pieces (i-1, i) and (i, i+1); a break falls back to the sample.
    best_d = np.hypot(px - cx[i], py - cy[i])
    best_a, best_b, best_t = i, i, np.zeros(len(i))
    for a, b in ((np.maximum(i - 1, 0), i), (i, np.minimum(i + 1, n - 1))):
        ax_, ay_ = cx[a], cy[a]
        abx, aby = cx[b] - ax_, cy[b] - ay_
        L2 = np.maximum(abx * abx + aby * aby, 1e-12)
        t = np.clip(((px - ax_) * abx + (py - ay_) * aby) / L2, 0.0, 1.0)
        d = np.hypot(px - ax_ - t * abx, py - ay_ - t * aby)
        valid = a != b
        if breaks is not None:
            valid &= ~breaks[np.minimum(a, n - 2)]
        better = valid & (d < best_d)
        best_d = np.where(better, d, best_d)
        best_a = np.where(better, a, best_a)
        best_b = np.where(better, b, best_b)
        best_t = np.where(better, t, best_t)
    return _Nearest(ys=yy + iy0, xs=xx + ix0, d=best_d, a=best_a, b=best_b, t=best_t)


def _segment_masks(tube: Tube, whole: _Nearest, reach: float, shape: Tuple[int, int], margin: int):
    """Yield ``(label, ys, xs)``: the lumen pixels of each run of equal labels along ``tube``.

    A run's mask is every pixel within its own lumen (distance to its nearest own piece <= the radius
    there), whatever else of the tube lies over it in projection (a loop, a foreshortened bend), as an
    annotator draws a segment (COCO instances may overlap). Only at a junction do consecutive runs
    compete: a pixel whose nearest own piece lies within ``radius + 1 + reach`` px of arc length of the
    junction goes to the run of its nearest piece among the run's own and the neighbour's pieces within
    ``radius + 1`` px of the junction, as the whole tube's nearest piece would give it.

    ``whole`` is the tube's own :func:`_nearest_pieces`, reused when the tube has a single label.
    """
    lab = tube.label
    n = len(lab)

    def lumen(lo: int, hi: int) -> Tuple[Optional[_Nearest], Optional[np.ndarray]]:
        """Samples ``lo..hi-1`` alone: their nearest pieces and which pixels lie within the lumen."""
        if (lo, hi) == (0, n):
            near = whole
        else:
            near = _nearest_pieces(tube.xy[lo:hi], None if tube.breaks is None else tube.breaks[lo: hi - 1],
                                   reach, shape, margin)
        if near is None:
            return None, None
        return near, near.d <= np.maximum(near.lerp(tube.r_px[lo:hi]), 0.5)

    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    if len(starts) == 1:
        near, inside = lumen(0, n)
        yield int(lab[0]), near.ys[inside], near.xs[inside]
        return
    ends = np.r_[starts[1:], n]  # exclusive
    s = np.r_[0.0, np.cumsum(np.hypot(*np.diff(tube.xy, axis=0).T))]  # projected arc length, px
    win = np.maximum(tube.r_px, _MIN_RADIUS_PX) + 1.0
    for s0, e0 in zip(starts, ends):
        parts = []
        # the junction rule: the run with its neighbours' pieces near each junction
        lo = min(int(np.searchsorted(s, s[s0] - win[s0], "left")), max(s0 - 1, 0))
        hi = max(int(np.searchsorted(s, s[e0 - 1] + win[e0 - 1], "right")), min(e0 + 1, n))
        near, inside = lumen(lo, hi)
        if near is not None:
            own = inside & (near.label(lab[lo:hi]) == lab[s0])
            parts.append((near.ys[own], near.xs[own]))
        # away from the junctions nothing competes with the run's own pieces
        a = s0 if s0 == 0 else int(np.searchsorted(s, s[s0] + win[s0] + reach, "left"))
        b = e0 if e0 == n else int(np.searchsorted(s, s[e0 - 1] - win[e0 - 1] - reach, "right"))
        if b > a:
            near, inside = lumen(s0, e0)
            if near is not None:
                far = inside & (near.a >= a - s0) & (near.b < b - s0)
                parts.append((near.ys[far], near.xs[far]))
        if parts:
            yield int(lab[s0]), np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def render_tubes(
    tubes: Sequence[Tube], shape: Tuple[int, int], want_masks: bool = False, margin: int = 48
) -> TubeRender:
    """Attenuation image ``(H, W)`` of ``tubes`` (summed, so crossing vessels add up), and with
    ``want_masks`` each label's lumen mask (see :func:`_segment_masks`) and the radius map.

    Per tube, every pixel takes its nearest centerline piece (:func:`_nearest_pieces`).
    """
    H, W = shape
    att = np.zeros((H, W), np.float32)
    masks: Dict[int, np.ndarray] = {}
    rad = np.zeros((H, W), np.float32) if want_masks else None
    for tube in tubes:
        if len(tube.xy) == 0:
            continue
        r_eff = np.maximum(tube.r_px, _MIN_RADIUS_PX)
        reach = float(r_eff.max()) + 2.0
        near = _nearest_pieces(tube.xy, tube.breaks, reach, shape, margin)
        if near is None:
            continue
        r = near.lerp(tube.r_px)
        re = near.lerp(r_eff)
        chord_px = 2.0 * np.sqrt(np.maximum(re**2 - near.d**2, 0.0))
        val = chord_px * near.lerp(tube.mm_per_px) * near.lerp(tube.mu) * (r / re) ** 2
        hit = val > 0
        att[near.ys[hit], near.xs[hit]] += val[hit].astype(np.float32)
        if want_masks:
            inside = near.d <= np.maximum(r, 0.5)
            ys, xs = near.ys[inside], near.xs[inside]
            r_mm = (r * near.lerp(tube.mm_per_px))[inside].astype(np.float32)
            rad[ys, xs] = np.maximum(rad[ys, xs], r_mm)  # pixels are unique within a tube
            for lb, ys, xs in _segment_masks(tube, near, reach, shape, margin):
                if len(ys):
                    masks.setdefault(lb, np.zeros((H, W), bool))[ys, xs] = True
    return TubeRender(attenuation=att, masks=masks, radius_mm=rad)


# --------------------------------------------------------------------------------------------------
# Static background


def _chord_quadric(o: np.ndarray, dirs: np.ndarray, inv_semi: np.ndarray, frame: np.ndarray,
                   center: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Chord length (mm) of every ray through an ellipsoid (rows of ``frame`` = its axes; use a
    zero inverse semi-axis for an infinite cylinder), and the ray parameter of the chord's middle."""
    oc = (o - center) @ frame.T * inv_semi  # (3,)
    dd = dirs @ frame.T * inv_semi  # (H, W, 3)
    A = (dd**2).sum(-1)
    B = 2.0 * (dd * oc).sum(-1)
    C = (oc**2).sum() - 1.0
    disc = B**2 - 4.0 * A * C
    chord = np.sqrt(np.maximum(disc, 0.0)) / np.maximum(A, 1e-12)
    return chord, -B / (2.0 * np.maximum(A, 1e-12))


def background_attenuation(anatomy: Anatomy, view: CArmView, rng: np.random.Generator) -> np.ndarray:
    """``(H, W)`` float32 attenuation of everything but the contrast-filled vessels and the catheter:
    chest wall and mediastinum, lungs, heart, vertebrae, ribs, soft-tissue inhomogeneity."""
    H, W = view.height, view.width
    th = anatomy.thorax
    src, dirs = view.rays()
    dirs = dirs.astype(np.float32)  # chord lengths to well under 0.01 mm; halves the work
    eye = np.eye(3)
    cx, cy = th.center_xy
    chest, _ = _chord_quadric(src, dirs, np.array([1 / th.semi_axes_xy[0], 1 / th.semi_axes_xy[1], 0.0]),
                              eye, np.array([cx, cy, 0.0]))
    lung = np.zeros((H, W))
    for c, r in th.lungs:
        lung += _chord_quadric(src, dirs, 1.0 / r, eye, c)[0]
    h = anatomy.heart
    heart_frame = np.stack([h.a, h.e1, h.e2])
    heart, _ = _chord_quadric(src, dirs, 1.0 / np.array([0.62 * h.Lh, 1.05 * h.R, 1.05 * h.R]), heart_frame,
                              h.B + 0.42 * h.Lh * h.a)
    # Where the heart is, it displaces lung: add back most of the tissue the lungs removed.
    tissue = chest - (1 - LUNG_DENSITY) * np.maximum(lung - 0.6 * heart, 0.0)
    att = MU_TISSUE * np.maximum(tissue, 0.0)

    # Vertebral bodies: a vertical cylinder modulated by body / disc along z.
    sx, sy = th.spine_xy
    spine, tmid = _chord_quadric(src, dirs, np.array([1 / th.spine_radius, 1 / (0.85 * th.spine_radius), 0.0]),
                                 eye, np.array([sx, sy, 0.0]))
    z = src[2] + tmid * dirs[..., 2]
    ph = np.mod(z - th.vertebra_phase, th.vertebra_period) / th.vertebra_period
    body = np.clip((0.5 - np.abs(ph - 0.5)) * th.vertebra_period / 6.0, 0.0, 1.0)
    body = body * body * (3.0 - 2.0 * body)  # smooth endplates, discs about 6 mm
    att += ndimage.gaussian_filter(MU_BONE_EXTRA * spine * (0.6 + 0.4 * body), 1.2 * max(H, W) / 512.0)

    # Ribs: tubes along 3D arcs.
    pts = np.concatenate(th.ribs)
    lens = [len(r) for r in th.ribs]
    breaks = np.zeros(len(pts) - 1, bool)
    breaks[np.cumsum(lens)[:-1] - 1] = True
    # Each rib tapers at both ends (no round caps where it leaves the rendered stretch).
    taper = np.concatenate([np.sin(np.linspace(0.0, np.pi, n)) ** 0.3 for n in lens])
    rib = project_tube(view, pts, th.rib_radius * np.maximum(taper, 0.05), np.full(len(pts), MU_RIB_EXTRA),
                       np.full(len(pts), -2), breaks)
    # cortical edges are visible but the bands are soft
    att += ndimage.gaussian_filter(render_tubes([rib], (H, W)).attenuation, 1.5 * max(H, W) / 512.0)

    # Soft-tissue inhomogeneity (fat, vessels, bowel gas below the diaphragm): smooth random field.
    lo = rng.normal(0.0, 1.0, (max(4, H // 16), max(4, W // 16)))
    lo = ndimage.gaussian_filter(lo, 2.0)
    lo = ndimage.zoom(lo / (lo.std() + 1e-9), (H / lo.shape[0], W / lo.shape[1]), order=1)[:H, :W]
    att += rng.uniform(0.04, 0.10) * lo

    return att.astype(np.float32)


def shutter_attenuation(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """``(H, W)`` float32: collimator shutters on some sides, a soft strongly attenuating border
    (kept out of the display harmonisation, as systems do)."""
    H, W = shape
    att = np.zeros((H, W), np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    for dist in (xx, W - 1 - xx, yy, H - 1 - yy):
        if rng.random() < 0.5:
            w = rng.uniform(0.01, 0.05) * max(H, W)
            att += (3.0 / (1.0 + np.exp((dist - w) / (0.006 * max(H, W))))).astype(np.float32)
    return att


# --------------------------------------------------------------------------------------------------
# Detector


@dataclass
class Exposure:
    """Per-cine detector and display settings.

    Display follows what angiography systems do: log of the detected quanta, a "harmonisation" that
    removes part of the large-scale background (lungs, heart shadow, diaphragm) while keeping vessel
    contrast, then a linear grey-level window (vessels dark)."""

    photons: float  # expected quanta per pixel without attenuation
    focal_blur_px: float
    detector_blur_px: float
    background: np.ndarray  # (H, W) attenuation subtracted before the window (smooth)
    level: float  # grey value of the background (0..1)
    scale: float  # grey levels per unit attenuation


def make_exposure(rng: np.random.Generator, background_att: np.ndarray, size: int) -> Exposure:
    """Dose (median about 200-600 quanta a pixel behind the patient) and display for one cine, from
    the static background attenuation ``(H, W)``."""
    H, W = background_att.shape
    c = background_att[H // 8: H - H // 8, W // 8: W - W // 8]
    median_att = float(np.median(c))
    photons = rng.uniform(200.0, 600.0) * float(np.exp(median_att))
    # large-scale background: smoothed at 1/8 resolution (same result, 60x less work)
    small = ndimage.zoom(background_att.astype(np.float64), 0.125, order=1)
    smooth = ndimage.zoom(ndimage.gaussian_filter(small, max(H, W) / 14.0 / 8.0, mode="nearest"),
                          (H / small.shape[0], W / small.shape[1]), order=1)[:H, :W]
    harmonise = rng.uniform(0.7, 0.88)
    scale = size / 512.0
    return Exposure(
        photons=photons,
        focal_blur_px=rng.uniform(0.6, 1.0) * scale,
        detector_blur_px=rng.uniform(0.4, 0.7) * scale,
        background=(median_att + harmonise * (smooth - median_att)).astype(np.float32),
        level=rng.uniform(0.42, 0.52),
        scale=rng.uniform(0.38, 0.52),
    )


def expose(att: np.ndarray, exposure: Exposure, rng: np.random.Generator) -> np.ndarray:
    """Attenuation ``(H, W)`` -> displayed image ``(H, W)`` float in [0, 1], vessels dark.

    transmission exp(-att) -> focal-spot blur -> Poisson(quanta) -> -log -> detector blur ->
    harmonisation -> window.
    """
    t = np.exp(-att.astype(np.float32))
    if exposure.focal_blur_px > 0.05:
        t = ndimage.gaussian_filter(t, exposure.focal_blur_px, truncate=3.0)
    counts = rng.poisson(exposure.photons * t.astype(np.float64)).astype(np.float32)
    est = -np.log(np.maximum(counts, 0.5) / np.float32(exposure.photons))
    if exposure.detector_blur_px > 0.05:
        est = ndimage.gaussian_filter(est, exposure.detector_blur_px, truncate=3.0)
    return np.clip(exposure.level - exposure.scale * (est - exposure.background), 0.0, 1.0)
