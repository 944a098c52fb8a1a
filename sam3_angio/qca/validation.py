"""QCA against the synthetic generator's ground truth: :func:`measure_mask` on every ground-truth segment
mask of a data set written by ``tools/make_synthetic.py``, compared with the CSV's ``stenosis_pct``,
``mld_mm``, ``reference_diameter_mm`` and the contours JSON (lesion centre, projected diameters).

What the truth means: the generator narrows a 3D tube by a cosine of the recorded percent (3D mm);
the mask is its perspective projection, at least 1 px wide (the generator draws radius >= 0.5 px);
``mm_per_pixel`` is the isocenter calibration, so ``measured mm = true mm x SOD / depth`` (the
magnification). A lesion's place is sample ``k`` of the segment's 3D centreline, the same in every view;
FINAL (stented) rows record no centre, so ``k`` comes from the same patient's PRE row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .measure import QCAParams, measure_mask
from .result import SegmentQCA

PathLike = Union[str, Path]

SAMPLE_MM = 0.5  # the generator's 3D centreline step (synthetic/anatomy.py STEP_MM)
MASK_FLOOR_PX = 1.0  # the thinnest lumen a generator mask shows
FORESHORTENED = 0.4  # projected / true lesion length below which a lesion counts as seen end-on
BANDS = ("<30", "30-50", "50-70", ">=70")


@dataclass
class TruthRow:
    tag: str
    patient: str
    mask_path: Path
    mm_per_pixel: float
    cass: int
    phase: str
    stenosis_pct: Optional[float]  # None: a healthy segment
    mld_mm: Optional[float]
    reference_diameter_mm: Optional[float]
    centerline: np.ndarray  # (M, 2) x, y frame pixels, from the proximal end, one sample per 0.5 mm (3D)
    diameters_px: np.ndarray  # (M,) projected lumen diameter, lesion included
    lesion_index: Optional[int] = None  # sample k of the lesion centre
    lesion_length_mm: Optional[float] = None  # 3D length of the cosine narrowing
    cine_path: Optional[Path] = None  # the frame the mask belongs to (bench_qca.py --checkpoint predicts it)
    frame_index: int = 0
    view_angles: Optional[Dict[str, float]] = None  # {primary, secondary} degrees

    @property
    def extent(self) -> Optional[Tuple[int, int]]:
        """Samples ``[a, b]`` of the lesion (its centre +- half its length)."""
        if self.lesion_index is None:
            return None
        h = int(round(0.5 * (self.lesion_length_mm or 6.0) / SAMPLE_MM))
        return max(0, self.lesion_index - h), min(len(self.centerline) - 1, self.lesion_index + h)

    @property
    def foreshortening(self) -> float:
        """Projected (isocenter mm) / 3D length of the lesion, or of the segment without one: 1 in
        the image plane, near 0 seen end-on."""
        a, b = self.extent or (0, len(self.centerline) - 1)
        pts = self.centerline[a: b + 1]
        L2 = float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1))) * self.mm_per_pixel
        return L2 / max(SAMPLE_MM * (b - a), 1e-9)

    @property
    def magnification(self) -> Optional[float]:
        """SOD / depth at the lesion, from its recorded projected diameter; None when too thin to tell."""
        if self.lesion_index is None or not self.mld_mm or self.diameters_px[self.lesion_index] < 1.5:
            return None
        return float(self.diameters_px[self.lesion_index] * self.mm_per_pixel / self.mld_mm)

    @property
    def mld_floor_mm(self) -> Optional[float]:
        """The truth MLD as the mask can show it: never thinner than 1 px."""
        if self.mld_mm is None:
            return None
        return max(self.mld_mm, MASK_FLOOR_PX * self.mm_per_pixel)


def carving(row: TruthRow, mask: np.ndarray) -> np.ndarray:
    """Per truth sample ``(M,)``: the fraction of the segment's own tube (its recorded centreline and
    diameters) missing from its mask. The generator's segment masks hold their whole lumen, but
    consecutive segments split at their junction by the nearest centreline piece, which cuts into a
    segment's end at a sharp or foreshortened bend (and masks written before 2026-12-03 gave every pixel
    to its nearest piece of the whole vessel, so a loop carved the segment under it)."""
    from scipy.spatial import cKDTree

    from .phantom import densify, tube_mask

    tube = tube_mask(row.centerline, 0.5 * row.diameters_px, mask.shape)
    yy, xx = np.nonzero(tube)
    dense, owner = densify(row.centerline, np.arange(len(row.centerline), dtype=np.float64))
    _, j = cKDTree(dense).query(np.stack([xx, yy], axis=1).astype(np.float64))
    k = np.rint(owner[j]).astype(int)
    cap = (j == 0) | (j == len(dense) - 1)  # the round caps: segment masks end flat
    miss = ~mask[yy, xx] & ~cap
    tot = np.bincount(k[~cap], minlength=len(row.centerline)).astype(np.float64)
    lost = np.bincount(k[miss], minlength=len(row.centerline)).astype(np.float64)
    return np.where(tot >= 3, lost / np.maximum(tot, 1.0), 0.0)


CARVED = 0.25  # a row whose mask misses more than this of its own tube at some sample is "carved"


@dataclass
class RowResult:
    row: TruthRow
    found: bool  # lesion rows: a reported lesion overlaps the truth lesion; healthy rows: any lesion reported
    n_lesions: int
    pct: Optional[float] = None  # the matched lesion's, else the worst point within the truth lesion
    mld_mm: Optional[float] = None
    ref_mm: Optional[float] = None
    errors: Dict[str, float] = field(default_factory=dict)
    carved: bool = False  # the mask is narrower than the lumen somewhere (healthy) / at the lesion


def read_truth(root: PathLike) -> List[TruthRow]:
    """Every row of ``root/angio.csv`` with its contours JSON; lesion sample indices resolved per
    (patient, segment) from the rows that record the lesion centre."""
    root = Path(root)
    rows: List[TruthRow] = []
    known: Dict[Tuple[str, int], Tuple[int, float]] = {}
    with open(root / "angio.csv", encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            with open(root / r["contours_path"], encoding="utf-8") as g:
                c = json.load(g)

            def num(k: str) -> Optional[float]:
                return float(r[k]) if r.get(k) not in (None, "") else None

            row = TruthRow(
                tag=Path(r["vessel_mask_actual_path"]).stem, patient=r["patient_id"],
                mask_path=root / r["vessel_mask_actual_path"], mm_per_pixel=float(r["mm_per_pixel"]),
                cass=int(r["cass_segment"]), phase=r["phase"], stenosis_pct=num("stenosis_pct"),
                mld_mm=num("mld_mm"), reference_diameter_mm=num("reference_diameter_mm"),
                centerline=np.asarray(c["centerline"], np.float64),
                diameters_px=np.asarray(c["diameters_px"], np.float64),
                cine_path=root / r["cine_path"] if r.get("cine_path") else None,
                frame_index=int(r.get("frame_index") or 0), view_angles=c.get("view_angles"),
            )
            st = c.get("stenosis")
            if st:
                k = int(np.argmin(np.linalg.norm(row.centerline - np.asarray(st["center"]), axis=1)))
                known[(row.patient, row.cass)] = (k, float(st["length_mm"]))
            rows.append(row)
    for row in rows:
        if row.stenosis_pct is not None and (row.patient, row.cass) in known:
            row.lesion_index, row.lesion_length_mm = known[(row.patient, row.cass)]
    return rows


def _truth_span(q: SegmentQCA, row: TruthRow) -> Tuple[float, float]:
    """The truth lesion's extent along the measured centreline, in the result's units."""
    a, b = row.extent
    pts = row.centerline[a: b + 1]
    d2 = ((q.centerline_xy[None, :, :] - pts[:, None, :]) ** 2).sum(-1)
    idx = np.argmin(d2, axis=1)
    return float(q.s[idx.min()]), float(q.s[idx.max()])


def evaluate_row(row: TruthRow, params: Optional[QCAParams] = None, use_ostium: bool = True) -> RowResult:
    """QCA of the row's mask compared with its truth."""
    return evaluate_row_many(row, [params], use_ostium)[0]


def evaluate_row_many(row: TruthRow, params_list: List[Optional[QCAParams]],
                      use_ostium: bool = True) -> List[RowResult]:
    """:func:`evaluate_row` for several settings, reading the mask once."""
    with Image.open(row.mask_path) as im:
        mask = np.asarray(im) > 0
    c = carving(row, mask)
    if row.extent is not None:
        a, b = row.extent
        c = c[a: b + 1]
    carved = bool(c.size and c.max() > CARVED)
    ost = tuple(row.centerline[0]) if use_ostium else None
    out = []
    for params in params_list:
        q = measure_mask(mask, row.mm_per_pixel, ostium=ost, source=row.tag, params=params)
        res = _compare(row, q)
        res.carved = carved
        out.append(res)
    return out


def read_row_mask(row: TruthRow) -> np.ndarray:
    """The row's ground-truth segment mask (H, W) bool."""
    with Image.open(row.mask_path) as im:
        return np.asarray(im) > 0


def evaluate_predicted(row: TruthRow, mask: np.ndarray, params: Optional[QCAParams] = None,
                       use_ostium: bool = True) -> RowResult:
    """QCA of a *predicted* mask of the row's segment (same frame, same size) compared with the row's
    truth; ``carved`` is the ground-truth mask's (a property of the view). Raises QCAInputError when the
    mask cannot be measured."""
    gt = read_row_mask(row)
    if mask.shape != gt.shape:
        raise ValueError(f"{row.tag}: predicted mask {mask.shape} differs from the frame {gt.shape}")
    c = carving(row, gt)
    if row.extent is not None:
        a, b = row.extent
        c = c[a: b + 1]
    ost = tuple(row.centerline[0]) if use_ostium else None
    res = _compare(row, measure_mask(mask, row.mm_per_pixel, ostium=ost, source=row.tag, params=params))
    res.carved = bool(c.size and c.max() > CARVED)
    return res


def _compare(row: TruthRow, q: SegmentQCA) -> RowResult:
    res = RowResult(row=row, found=False, n_lesions=len(q.lesions))
    if row.stenosis_pct is None:
        res.found = bool(q.lesions)
        return res
    if row.lesion_index is None:  # no row of this lesion records its centre (cannot happen with PRE rows)
        res.pct, res.mld_mm, res.ref_mm = q.percent_diameter_stenosis, q.mld, q.reference_diameter
    else:
        s0, s1 = _truth_span(q, row)
        pad = 2.0 * (row.mm_per_pixel if q.units == "mm" else 1.0)
        hits = [L for L in q.lesions if L.end >= s0 - pad and L.start <= s1 + pad]
        if hits:
            best = max(hits, key=lambda L: L.percent_diameter_stenosis)
            res.found = True
            res.pct, res.mld_mm, res.ref_mm = best.percent_diameter_stenosis, best.mld, best.reference_diameter
        else:  # nothing reported there: what the profile says at the truth lesion (its worst point)
            sel = (q.s >= s0) & (q.s <= s1)
            if not sel.any():
                sel = np.argmin(np.abs(q.s - 0.5 * (s0 + s1))) == np.arange(len(q.s))
            i = np.flatnonzero(sel)[int(np.argmin((q.diameter / q.reference)[sel]))]
            res.pct = float(100.0 * (1.0 - q.diameter[i] / q.reference[i]))
            res.mld_mm, res.ref_mm = float(q.diameter[i]), float(q.reference[i])
    res.errors = {
        "pct": res.pct - row.stenosis_pct,
        "mld_mm": res.mld_mm - row.mld_mm,
        "ref_mm": res.ref_mm - row.reference_diameter_mm,
        # against what the mask can show (truth MLD raised to the 1 px floor)
        "pct_floor": res.pct - 100.0 * (1.0 - row.mld_floor_mm / row.reference_diameter_mm),
        "mld_floor_mm": res.mld_mm - row.mld_floor_mm,
    }
    m = row.magnification
    if m is not None:  # against the projected truth: the measurement alone, calibration taken out
        res.errors["mld_projected_mm"] = res.mld_mm - max(row.mld_mm * m, row.mm_per_pixel)
        res.errors["ref_projected_mm"] = res.ref_mm - row.reference_diameter_mm * m
    return res


def evaluate_dataset(root: PathLike, params: Optional[QCAParams] = None, use_ostium: bool = True) -> List[RowResult]:
    return [evaluate_row(r, params, use_ostium) for r in read_truth(root)]


def band(pct: float) -> str:
    """Severity band of a truth percent diameter stenosis."""
    return "<30" if pct < 30 else "30-50" if pct < 50 else "50-70" if pct < 70 else ">=70"


def _dist(e: np.ndarray) -> dict:
    a = np.abs(e)
    return {"n": int(len(e)), "mae": float(a.mean()), "median": float(np.median(a)),
            "p90": float(np.percentile(a, 90)), "max": float(a.max()), "bias": float(e.mean())}


def summarize(results: List[RowResult], min_foreshortening: float = 0.0, drop_carved: bool = False) -> Dict[str, dict]:
    """Distributions of |error| (MAE, median, p90, max, and the signed bias) per quantity, over all
    lesions and per severity band; detection of lesions >= 30 %; lesion-free rate of healthy segments.
    ``min_foreshortening`` leaves out lesions seen more end-on than that, ``drop_carved`` rows whose
    mask is carved (:func:`carving`; both counted in ``n_left_out``)."""
    les = [r for r in results if r.row.stenosis_pct is not None]
    kept = [r for r in les if r.row.foreshortening >= min_foreshortening and not (drop_carved and r.carved)]
    healthy_all = [r for r in results if r.row.stenosis_pct is None]
    healthy = [r for r in healthy_all if not (drop_carved and r.carved)]
    out: Dict[str, dict] = {"n_left_out": {"n": len(les) - len(kept), "healthy": len(healthy_all) - len(healthy)}}
    groups = {"all": kept, **{b: [r for r in kept if band(r.row.stenosis_pct) == b] for b in BANDS}}
    for g, rs in groups.items():
        out[g] = {"n": len(rs)}
        for key in ("pct", "mld_mm", "ref_mm", "pct_floor", "mld_floor_mm", "mld_projected_mm", "ref_projected_mm"):
            e = np.array([r.errors[key] for r in rs if key in r.errors])
            if len(e):
                out[g][key] = _dist(e)
    sig = [r for r in kept if r.row.stenosis_pct >= 30]
    out["detection"] = {"n": len(sig), "found": int(sum(r.found for r in sig)),
                        "rate": float(np.mean([r.found for r in sig])) if sig else float("nan")}
    out["healthy"] = {"n": len(healthy), "with_lesion": int(sum(r.found for r in healthy)),
                      "clean_rate": float(1.0 - np.mean([r.found for r in healthy])) if healthy else float("nan")}
    return out
