"""A per-patient 3D coronary tree on an ellipsoidal heart, the thorax around it, and cardiac motion.

Vessels are centerlines sampled every 0.5 mm (LPS mm, heart centre near the origin) with a lumen
radius per sample and a CASS id per sample. The tree follows the textbook course: RCA in the right
atrioventricular groove to the crux with the PDA in the posterior interventricular groove (right
dominance); left main splitting into the LAD (anterior interventricular groove, diagonals, septals)
and the LCX (left atrioventricular groove, obtuse marginals), sometimes a ramus. Lengths, courses,
tortuosity, calibres (lumen diameter about 1.5-4 mm, tapering) and dominance vary per patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.interpolate import CubicSpline

from .projection import ANTERIOR, LEFT, SUPERIOR

STEP_MM = 0.5  # centerline sampling


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class Heart:
    """Ellipsoidal ventricles: base centre ``B``, long axis ``a`` (base -> apex), radial basis
    ``e1`` (anterior-ish), ``e2`` (left-ish); base radius ``R`` and base-apex length ``Lh`` (mm).

    Surface parameters: ``s`` (0 at the atrioventricular groove, 1 at the apex), ``psi`` (degrees
    around the long axis from ``e1`` towards ``e2``), ``lift`` (mm outwards from the surface)."""

    B: np.ndarray
    a: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    R: float
    Lh: float

    def radius_at(self, s: np.ndarray) -> np.ndarray:
        return self.R * np.sqrt(np.clip(1.0 - np.asarray(s) ** 2, 0.01, None))

    def point(self, params: np.ndarray) -> np.ndarray:
        """``params (N, 3) = (s, psi_deg, lift_mm)`` -> points ``(N, 3)`` LPS mm."""
        s, psi, lift = params[:, 0], np.deg2rad(params[:, 1]), params[:, 2]
        r = self.radius_at(s) + lift
        radial = np.cos(psi)[:, None] * self.e1 + np.sin(psi)[:, None] * self.e2
        return self.B + (s * self.Lh)[:, None] * self.a + r[:, None] * radial

    def metric(self, params: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """mm per unit ``s`` and mm per radian of ``psi`` at ``params`` (for perpendicular offsets)."""
        s = params[:, 0]
        r = self.radius_at(s)
        drds = -self.R * s / np.sqrt(np.clip(1.0 - s**2, 0.01, None))
        m_s = np.sqrt(self.Lh**2 + drds**2)
        m_psi = np.maximum(r + params[:, 2], 5.0)
        return m_s, m_psi


@dataclass
class Branch:
    """One vessel centerline. Arrays share length N (0.5 mm steps)."""

    name: str
    side: str  # "left" | "right": which coronary injection fills it
    params: np.ndarray  # (N, 3) surface parameters (s, psi_deg, lift_mm)
    points: np.ndarray  # (N, 3) LPS mm at end-diastole
    radius_ref: np.ndarray  # (N,) lumen radius mm without lesions
    cass: np.ndarray  # (N,) CASS id per sample; 0 = not a CASS-labelled vessel
    path_mm: np.ndarray  # (N,) distance from the coronary ostium along the tree (contrast arrival)
    parent: Optional[str] = None

    @property
    def arclen(self) -> np.ndarray:
        return np.arange(len(self.points)) * STEP_MM


@dataclass
class Lesion:
    """A stenosis: percent diameter reduction of a smooth (cosine) narrowing of length ``length_mm``
    centred at ``index`` of branch ``branch``."""

    cass: int
    branch: str
    index: int
    length_mm: float


@dataclass
class Thorax:
    """Static anatomy behind the heart (LPS mm, same origin as the heart)."""

    center_xy: Tuple[float, float]
    semi_axes_xy: Tuple[float, float]
    spine_xy: Tuple[float, float]
    spine_radius: float
    vertebra_period: float
    vertebra_phase: float
    lungs: List[Tuple[np.ndarray, np.ndarray]]  # (centre (3,), semi-axes (3,))
    ribs: List[np.ndarray]  # polylines (M, 3)
    rib_radius: float
    catheter_aorta: np.ndarray  # (K, 3) control points from aortic root up, over the arch, down


@dataclass
class Anatomy:
    heart: Heart
    branches: Dict[str, Branch]
    thorax: Thorax
    dominance: str  # right | left | co
    has_ramus: bool
    heart_rate_bpm: float
    ostia: Dict[str, np.ndarray] = field(default_factory=dict)  # side -> (3,)

    def segment_ids(self, side: Optional[str] = None) -> List[int]:
        ids = set()
        for b in self.branches.values():
            if side is None or b.side == side:
                ids.update(int(c) for c in np.unique(b.cass) if c > 0)
        return sorted(ids)

    def branch_of_segment(self, cass_id: int) -> Branch:
        """The branch that carries most samples of ``cass_id``."""
        best, n = None, 0
        for b in self.branches.values():
            k = int(np.sum(b.cass == cass_id))
            if k > n:
                best, n = b, k
        if best is None:
            raise KeyError(f"segment {cass_id} is not in this tree")
        return best


# --------------------------------------------------------------------------------------------------
# Curves on the heart surface


def surface_curve(
    heart: Heart,
    ctrl: np.ndarray,
    rng: np.random.Generator,
    wiggle_mm: float,
    wavelength_mm: Tuple[float, float] = (18.0, 45.0),
) -> np.ndarray:
    """Surface parameters ``(N, 3)`` of a smooth curve through ``ctrl (K, 3)`` sampled every
    ``STEP_MM`` of 3D arc length, with tortuosity: sinusoidal offsets perpendicular to the course
    on the surface (amplitude ``wiggle_mm``, zero at the start so branches leave their parent
    exactly at the take-off)."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    p3 = heart.point(ctrl)
    seg = np.linalg.norm(np.diff(p3, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(np.maximum(seg, 1e-3))])
    dense_t = np.linspace(0.0, t[-1], max(64, int(t[-1] / 0.1)))
    if len(ctrl) >= 3:
        params = CubicSpline(t, ctrl, axis=0, bc_type="natural")(dense_t)
    else:
        params = np.stack([np.interp(dense_t, t, ctrl[:, k]) for k in range(3)], axis=1)

    # Tortuosity: offsets along the on-surface normal of the course.
    pts = heart.point(params)
    arclen = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    w = np.zeros_like(arclen)
    for lam in (rng.uniform(*wavelength_mm), rng.uniform(*wavelength_mm) * 1.9):
        w += rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * arclen / lam + rng.uniform(0, 2 * np.pi))
    w *= wiggle_mm * np.clip(arclen / 6.0, 0.0, 1.0)
    w -= w[0]
    m_s, m_psi = heart.metric(params)
    ds = np.gradient(params[:, 0]) * m_s
    dpsi = np.gradient(np.deg2rad(params[:, 1])) * m_psi
    norm = np.maximum(np.hypot(ds, dpsi), 1e-9)
    params = params.copy()
    params[:, 0] += w * (-dpsi / norm) / m_s
    params[:, 1] += np.rad2deg(w * (ds / norm) / m_psi)

    # Resample every STEP_MM of 3D arc length.
    pts = heart.point(params)
    arclen = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n = max(2, int(arclen[-1] / STEP_MM) + 1)
    out_l = np.arange(n) * STEP_MM
    return np.stack([np.interp(out_l, arclen, params[:, k]) for k in range(3)], axis=1)


def _taper(n: int, d0: float, d1: float, rng: np.random.Generator) -> np.ndarray:
    """Lumen radius (mm) along ``n`` samples: linear taper of the diameter with a mild ripple."""
    f = np.linspace(0.0, 1.0, n)
    ripple = 1.0 + 0.04 * np.sin(2 * np.pi * f * rng.uniform(1.0, 3.0) + rng.uniform(0, 2 * np.pi))
    return 0.5 * (d0 + (d1 - d0) * f) * ripple


# --------------------------------------------------------------------------------------------------
# The tree


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """A random patient: heart shape and orientation, coronary tree, thorax."""
    R = rng.uniform(40.0, 50.0)
    Lh = rng.uniform(82.0, 100.0)
    az = np.deg2rad(rng.uniform(35.0, 55.0))  # long axis: left of anterior in the axial plane
    el = np.deg2rad(rng.uniform(25.0, 40.0))  # and tilted towards the feet
    a = _unit(np.cos(el) * (np.cos(az) * ANTERIOR + np.sin(az) * LEFT) - np.sin(el) * SUPERIOR)
    e1 = _unit(ANTERIOR - (ANTERIOR @ a) * a)
    e2 = np.cross(a, e1)
    if e2 @ LEFT < 0:
        e2 = -e2
    B = -0.42 * Lh * a + rng.normal(0.0, 4.0, 3)
    heart = Heart(B=B, a=a, e1=e1, e2=e2, R=R, Lh=Lh)

    dominance = str(rng.choice(["right", "left", "co"], p=[0.8, 0.1, 0.1]))
    has_ramus = bool(rng.random() < 0.3)
    k = rng.uniform(0.72, 0.98)  # calibre of this patient
    tort = rng.uniform(0.6, 2.0)  # tortuosity amplitude (mm)
    j = lambda sd: rng.normal(0.0, sd)  # noqa: E731

    branches: Dict[str, Branch] = {}

    def add(name, side, ctrl, d0, d1, cass, parent=None, take=None, wiggle=None, cass_fn=None):
        params = surface_curve(heart, np.asarray(ctrl), rng, tort if wiggle is None else wiggle)
        n = len(params)
        radius = _taper(n, d0 * k, d1 * k, rng)
        labels = np.full(n, cass, dtype=np.int32) if cass_fn is None else cass_fn(n)
        path0 = 0.0
        if parent is not None:
            path0 = branches[parent].path_mm[take]
            # A branch is never wider than its parent at the take-off.
            radius = np.minimum(radius, branches[parent].radius_ref[take] * 0.92)
        b = Branch(
            name=name, side=side, params=params, points=heart.point(params), radius_ref=radius,
            cass=labels, path_mm=path0 + np.arange(n) * STEP_MM, parent=parent,
        )
        branches[name] = b
        return b

    def at(branch: Branch, frac: float) -> Tuple[int, np.ndarray]:
        i = int(np.clip(round(frac * (len(branch.params) - 1)), 0, len(branch.params) - 1))
        return i, branch.params[i].copy()

    def near_psi(branch: Branch, psi: float, lo: float = 0.05, hi: float = 0.95) -> Tuple[int, np.ndarray]:
        n = len(branch.params)
        i0, i1 = int(lo * n), max(int(lo * n) + 1, int(hi * n))
        i = i0 + int(np.argmin(np.abs(branch.params[i0:i1, 1] - psi)))
        return i, branch.params[i].copy()

    # ---- left coronary: LM -> LAD (+D1, D2, septals), LCX (+OM1, OM2), optional ramus
    lm = add(
        "LM", "left",
        # left main: about 8-15 mm from the left sinus to the LAD/LCX bifurcation
        [(-0.08, 33 + j(3), -0.17 * R), (-0.035, 38 + j(2), -0.07 * R), (0.0, 42 + j(2), -2.0)],
        4.3, 4.0, 11, wiggle=0.3,
    )
    bif = lm.params[-1]
    f_d1, f_d2 = rng.uniform(0.17, 0.27), rng.uniform(0.45, 0.58)
    psi_lad = bif[1] - 4 + j(3)
    lad_end = rng.uniform(0.92, 1.02)

    def lad_labels(n):
        lab = np.full(n, 14, np.int32)
        lab[: int(f_d2 * n)] = 13
        lab[: int(f_d1 * n)] = 12
        return lab

    lad = add(
        "LAD", "left",
        [bif, (0.22, psi_lad + j(3), 0.0), (0.5, psi_lad - 2 + j(4), 0.0), (0.78, psi_lad - 4 + j(5), 0.0),
         (lad_end, psi_lad - 8 + j(6), 0.0)],
        3.6, 1.4, 0, parent="LM", take=len(lm.params) - 1, cass_fn=lad_labels,
    )
    i, p = at(lad, f_d1)
    add("D1", "left", [p, p + (0.2, 28 + j(6), 0), p + (0.45, 52 + j(8), 0)], 2.5, 1.2, 15, "LAD", i)
    i, p = at(lad, f_d2)
    add("D2", "left", [p, p + (0.15, 20 + j(5), 0), p + (0.32, 36 + j(7), 0)], 2.0, 1.1, 16, "LAD", i)
    for n_s, f in enumerate(np.sort(rng.uniform(0.12, 0.65, int(rng.integers(3, 6))))):
        i, p = at(lad, f)
        add(f"septal{n_s + 1}", "left",
            [p, p + (0.06, -8 + j(3), -6), p + (0.15, -14 + j(4), -14 + j(3))], 1.2, 0.7, 17, "LAD", i, wiggle=0.5)

    if dominance == "right":
        psi_cx_end = rng.uniform(140.0, 165.0)
    elif dominance == "co":
        psi_cx_end = rng.uniform(180.0, 195.0)
    else:
        psi_cx_end = 210.0 + j(3)
    psi_om1 = rng.uniform(80.0, 100.0)
    psi_om2 = min(psi_om1 + rng.uniform(25.0, 42.0), psi_cx_end - 8.0)

    lcx_ctrl = [bif, (0.05, 72 + j(4), -2.0), (0.09, 105 + j(4), -3.0),
                (0.12, 0.5 * (105 + psi_cx_end), -3.0), (0.14, psi_cx_end, -3.0)]
    lcx_d1 = 2.6 if dominance == "left" else (2.2 if dominance == "co" else 1.9)
    lcx = add("LCX", "left", lcx_ctrl, 3.2, lcx_d1, 19, "LM", len(lm.params) - 1)
    i_om1, p = near_psi(lcx, psi_om1, 0.1, 0.7)
    lcx.cass[:i_om1] = 18
    add("OM1", "left", [p, p + (0.25, 10 + j(4), 0), p + (0.58 + j(0.05), 16 + j(6), 0)], 2.4, 1.3, 20, "LCX", i_om1)
    i, p = near_psi(lcx, psi_om2, 0.3, 0.95)
    add("OM2", "left", [p, p + (0.2, 8 + j(4), 0), p + (0.5 + j(0.05), 12 + j(6), 0)], 2.0, 1.1, 21, "LCX", i)
    if dominance == "left":
        i = len(lcx.params) - 1
        p = lcx.params[i]
        add("LPDA", "left", [p, p + (0.3, 1 + j(2), 0), p + (0.68, 4 + j(4), 0)], 2.0, 1.1, 27, "LCX", i)
    if has_ramus:
        p = bif.copy()
        add("ramus", "left", [p, (0.18, 0.5 * (psi_lad + psi_om1) + j(4), 0.0), (0.55, 0.5 * (psi_lad + psi_om1) + 6 + j(5), 0.0)],
            2.3, 1.2, 28, "LM", len(lm.params) - 1)

    # ---- right coronary: RCA (+PDA, posterolateral, acute marginal, conus)
    psi_crux = -150.0 + j(4)
    psi_am = rng.uniform(-102.0, -90.0)
    psi_rca_end = psi_crux if dominance in ("right", "co") else rng.uniform(-118.0, -108.0)
    rca_ctrl = [(-0.12, -10 + j(4), -0.38 * R), (-0.05, -25 + j(4), -0.15 * R), (0.0, -45 + j(3), -3.0),
                (0.03, -75 + j(3), -3.0), (0.05, psi_am, -3.0)]
    if psi_rca_end < psi_am - 10:
        rca_ctrl += [(0.06, 0.5 * (psi_am + psi_rca_end), -3.0), (0.05, psi_rca_end, -3.0)]
    else:
        rca_ctrl += [(0.05, psi_rca_end, -3.0)]
    rca_d = (3.9, 3.0) if dominance == "right" else ((3.4, 2.5) if dominance == "co" else (2.8, 1.8))
    rca = add("RCA", "right", rca_ctrl, rca_d[0], rca_d[1], 3)
    i_am, _ = near_psi(rca, psi_am, 0.2, 0.98)
    rca.cass[:i_am] = 2
    rca.cass[: i_am // 2] = 1
    if dominance in ("right", "co"):
        i = len(rca.params) - 1
        p = rca.params[i]
        add("PDA", "right", [p, p + (0.3, 2 + j(2), 0), p + (0.7 + j(0.05), 5 + j(4), 0)], 2.1, 1.1, 4, "RCA", i)
        if dominance == "right":
            add("PL", "right", [p, p + (0.04, -22 + j(4), 0), p + (0.3, -34 + j(6), 0)], 1.8, 1.0, 6, "RCA", i)
    i, p = near_psi(rca, psi_am, 0.2, 0.98)
    add("AM", "right", [p, p + (0.25, 7 + j(3), 0), p + (0.5, 11 + j(4), 0)], 1.4, 0.8, 10, "RCA", i)
    i, p = at(rca, 0.06)
    add("conus", "right", [p, p + (-0.02, 18 + j(4), 4), p + (0.06, 38 + j(6), 6)], 1.1, 0.7, 0, "RCA", i, wiggle=0.6)

    # Small unnamed side branches (diameter about 0.6-1.2 mm): real trees show many; a model must not
    # learn that every dark line is a labelled segment. Unlabelled (CASS 0).
    for parent in ("LAD", "D1", "D2", "LCX", "OM1", "OM2", "ramus", "RCA", "PDA", "LPDA"):
        if parent not in branches:
            continue
        pb = branches[parent]
        for t in range(int(rng.poisson(4.0 if parent in ("LAD", "RCA") else 1.8))):
            i, p = at(pb, rng.uniform(0.1, 0.9))
            sgn = 1.0 if rng.random() < 0.5 else -1.0
            d0 = min(1.2, 1.2 * pb.radius_ref[i] / k)
            add(f"twig_{parent}_{t + 1}", pb.side,
                [p, p + (rng.uniform(0.02, 0.06), sgn * rng.uniform(4, 10), 0.0),
                 p + (rng.uniform(0.06, 0.16), sgn * rng.uniform(10, 22), 0.0)],
                d0, 0.5, 0, parent, i, wiggle=0.8)

    thorax = make_thorax(rng, heart)
    return Anatomy(
        heart=heart, branches=branches, thorax=thorax, dominance=dominance, has_ramus=has_ramus,
        heart_rate_bpm=float(rng.uniform(60.0, 90.0)),
        ostia={"left": lm.points[0].copy(), "right": rca.points[0].copy()},
    )


def make_thorax(rng: np.random.Generator, heart: Heart) -> Thorax:
    cx, cy = rng.uniform(-32.0, -18.0), rng.uniform(28.0, 42.0)  # heart sits anterior-left
    ax, ay = rng.uniform(145.0, 170.0), rng.uniform(100.0, 120.0)
    spine = (cx + rng.normal(0.0, 4.0), cy + 0.45 * ay)
    dome = rng.uniform(-70.0, -50.0)  # top of the diaphragm (mm, heart centre = 0)
    lungs = []
    for side in (-1.0, 1.0):
        c = np.array([cx + side * rng.uniform(68.0, 80.0), cy + rng.uniform(-5.0, 15.0), dome + 125.0])
        r = np.array([rng.uniform(55.0, 65.0), rng.uniform(75.0, 90.0), 125.0 + rng.uniform(-5.0, 5.0)])
        lungs.append((c, r))
    ribs = []
    top = rng.uniform(150.0, 175.0)
    for k in range(12):
        z0 = top - 24.0 * k
        beta = np.deg2rad(np.linspace(12.0, 150.0, 90))
        for side in (-1.0, 1.0):
            x = cx + side * ax * 0.93 * np.sin(beta)
            y = cy + ay * 0.93 * np.cos(beta)
            # posterior ribs run down and out from the spine, anterior ones down and in
            z = z0 - 95.0 * (beta / beta[-1]) ** 0.9
            ribs.append(np.stack([x, y, z], axis=1))
    root = heart.B - 0.2 * heart.Lh * heart.a
    aorta = np.array([
        root,
        root + (-12.0, -5.0, 60.0),
        root + (2.0, 18.0, 115.0),
        root + (25.0, 45.0, 110.0),
        np.array([spine[0] + 22.0, spine[1] - 12.0, root[2] + 50.0]),
        np.array([spine[0] + 22.0, spine[1] - 12.0, root[2] - 250.0]),
    ])
    return Thorax(
        center_xy=(cx, cy), semi_axes_xy=(ax, ay), spine_xy=spine, spine_radius=rng.uniform(17.0, 22.0),
        vertebra_period=rng.uniform(26.0, 30.0), vertebra_phase=rng.uniform(0.0, 30.0),
        lungs=lungs, ribs=ribs, rib_radius=rng.uniform(4.5, 6.0), catheter_aorta=aorta,
    )


def catheter_path(anatomy: Anatomy, side: str) -> np.ndarray:
    """Guide catheter centerline ``(M, 3)`` from the ostium of ``side`` back over the aortic arch."""
    ost = anatomy.ostia[side]
    ctrl = np.vstack([ost, anatomy.thorax.catheter_aorta])
    seg = np.linalg.norm(np.diff(ctrl, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(seg)])
    tt = np.arange(0.0, t[-1], 1.0)
    return CubicSpline(t, ctrl, axis=0, bc_type="natural")(tt)


# --------------------------------------------------------------------------------------------------
# Lesions and motion


def lesion_radius(branch: Branch, lesions: Sequence[Tuple[Lesion, float]]) -> np.ndarray:
    """Lumen radius of ``branch`` with ``(lesion, percent diameter reduction)`` applied."""
    r = branch.radius_ref.copy()
    l = branch.arclen
    for lesion, pct in lesions:
        if lesion.branch != branch.name or pct <= 0:
            continue
        x = (l - l[lesion.index]) / (0.5 * lesion.length_mm)
        bump = np.where(np.abs(x) < 1.0, 0.5 * (1.0 + np.cos(np.pi * x)), 0.0)
        r *= 1.0 - (pct / 100.0) * bump
    return r


def cardiac_transform(anatomy: Anatomy, points: np.ndarray, contraction: float, breath_mm: float) -> np.ndarray:
    """Points moved by ventricular contraction ``c`` in [0, 1] (0 = end-diastole): shortening along
    the long axis, radial inward motion and an apical twist, plus a cranio-caudal breathing shift."""
    h = anatomy.heart
    rel = points - h.B
    ax = rel @ h.a
    radial = rel - ax[:, None] * h.a
    frac = np.clip(ax / h.Lh, 0.0, 1.0)
    radial = radial * (1.0 - 0.10 * contraction * (0.6 + 0.4 * frac))[:, None]
    twist = np.deg2rad(7.0 * contraction * frac)
    # Rodrigues rotation about the long axis (radial is perpendicular to a).
    rot = radial * np.cos(twist)[:, None] + np.cross(h.a, radial) * np.sin(twist)[:, None]
    out = h.B + (ax * (1.0 - 0.07 * contraction))[:, None] * h.a + rot
    out[:, 2] += breath_mm
    return out
