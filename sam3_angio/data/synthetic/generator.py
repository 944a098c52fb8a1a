"""Writes synthetic patients in the study's CSV layout: cines, segment masks, full-tree pseudo-labels
with teacher-like errors, contours JSON, and the CSV (with stenosis and calibration columns).

Per patient: one anatomy (3D tree, thorax), lesions in 1-3 CASS segments, phases PRE / FINAL
(/ EVENT), one or more cines a phase in standard views (jittered) of the injected side. One row per
visible CASS segment of each cine (``label="all"``) or only per lesion segment (``label="lesions"``).
Deterministic: the same seed writes the same bytes; patient i's data do not depend on N.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from itertools import repeat
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from PIL import Image
from scipy import ndimage

from ...cass import DEFAULT_CLASS_IDS, STUDY_COUNTS, cass_name
from ...errors import DataError
from ..atomic import atomic_output_dir, write_manifest
from ..layout import ALL_COLUMNS
from ..masks import resize_nearest, save_mask_png
from .anatomy import STEP_MM, Anatomy, Lesion, cardiac_transform, catheter_path, lesion_radius, make_anatomy
from .projection import CArmView
from .views import INJECTION_SIDE, sample_view
from .xray import Tube, background_attenuation, expose, make_exposure, project_tube, render_tubes, shutter_attenuation

PathLike = Union[str, Path]

CSV_NAME = "angio.csv"
MANIFEST_KIND = "sam3_angio.synthetic"
FORMAT_VERSION = 1

CASS_TO_VESSEL_NAME: Dict[int, str] = {
    1: "RCA", 2: "RCA", 3: "RCA", 4: "PDA", 12: "LAD", 13: "LAD", 14: "LAD", 15: "LAD", 16: "LAD",
    18: "LCX", 19: "LCX", 20: "LCX", 21: "LCX", 28: "Ramus",
}
CASS_TO_PATTERN: Dict[int, str] = {
    1: "PROX_RCA", 2: "MID_RCA", 3: "DIST_RCA", 4: "PDA", 12: "PROX_LAD", 13: "MID_LAD", 14: "DIST_LAD",
    15: "D1", 16: "D2", 18: "PROX_LCX", 19: "MID_LCX", 20: "OM1", 21: "OM2", 28: "RAMUS",
}

FPS = 15.0
MU_CONTRAST = (0.13, 0.24)  # 1/mm: diluted iodine in the lumen
MU_CATHETER = 0.28  # contrast-filled guide catheter plus its wall
CATHETER_RADIUS_MM = 0.95  # about 6 F


@dataclass(frozen=True)
class SyntheticConfig:
    n_patients: int = 24
    seed: int = 0
    frames: int = 12  # T
    size: int = 512  # H = W
    pseudo_label_size: int = 512  # DeepSA-style pseudo-labels are 512 x 512 whatever the frame size
    val_fraction: float = 0.25
    cine_dtype: str = "uint8"  # uint8 | uint16 (12-bit values) | float32 (0..1)
    label: str = "all"  # all: a row per visible CASS segment; lesions: rows for lesion segments only

    def check(self) -> None:
        """A DataError (one ``error:`` line from the tool) naming the argument and its command-line flag."""
        if self.n_patients < 1:
            raise DataError(f"n_patients (--n-patients) must be >= 1, got {self.n_patients}")
        if self.seed < 0:
            raise DataError(f"seed (--seed) must be >= 0, got {self.seed}")
        if self.frames < 1:
            raise DataError(f"frames (--frames) must be >= 1, got {self.frames}")
        if not (32 <= self.size <= 2048):
            raise DataError(f"size (--size) must be 32..2048 pixels, got {self.size}")
        if not (32 <= self.pseudo_label_size <= 2048):
            raise DataError(f"pseudo_label_size (--pseudo-size) must be 32..2048 pixels, got {self.pseudo_label_size}")
        if not (0.0 <= self.val_fraction < 1.0):
            raise DataError(f"val_fraction (--val-fraction) must be in [0, 1), got {self.val_fraction}")
        if self.cine_dtype not in ("uint8", "uint16", "float32"):
            raise DataError(f"cine_dtype (--cine-dtype) must be uint8, uint16 or float32, got {self.cine_dtype!r}")
        if self.label not in ("all", "lesions"):
            raise DataError(f"label (--label) must be 'all' or 'lesions', got {self.label!r}")


@dataclass
class _Cine:
    cine_id: str
    phase: str
    side: str
    vessel: str
    view_name: str
    primary: float
    secondary: float


def patient_id(index: int) -> str:
    return f"SYN{index + 1:04d}"


def split_patients(n_patients: int, seed: int, val_fraction: float) -> Dict[int, str]:
    """Patient index -> split; at least one val patient when there are two or more patients."""
    n_val = int(round(val_fraction * n_patients))
    if n_patients >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), n_patients - 1)
    else:
        n_val = 0
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919])).permutation(n_patients)
    val = set(int(i) for i in order[:n_val])
    return {i: ("val" if i in val else "train") for i in range(n_patients)}


# --------------------------------------------------------------------------------------------------
# One patient


def _plan_lesions(rng: np.random.Generator, anatomy: Anatomy) -> List[Lesion]:
    present = [c for c in DEFAULT_CLASS_IDS if c in anatomy.segment_ids()]
    w = np.array([STUDY_COUNTS[c] for c in present], dtype=np.float64)
    k = int(min(len(present), rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12])))
    chosen = rng.choice(present, size=k, replace=False, p=w / w.sum())
    lesions = []
    for c in chosen:
        b = anatomy.branch_of_segment(int(c))
        idx = np.nonzero(b.cass == c)[0]
        seg_len = len(idx) * STEP_MM
        center = int(idx[int(rng.uniform(0.3, 0.7) * (len(idx) - 1))])
        length = float(min(rng.uniform(6.0, 16.0), 0.8 * seg_len))
        lesions.append(Lesion(cass=int(c), branch=b.name, index=center, length_mm=max(length, 3.0)))
    return lesions


def _phase_pct(rng: np.random.Generator, phase: str) -> float:
    lo, hi = {"PRE": (45.0, 90.0), "FINAL": (0.0, 18.0), "EVENT": (50.0, 95.0)}[phase]
    return float(rng.uniform(lo, hi))


def _plan_cines(rng: np.random.Generator, pid: str, phase: str, lesions: List[Lesion]) -> List[_Cine]:
    by_side: Dict[str, List[int]] = {}
    for les in lesions:
        by_side.setdefault(INJECTION_SIDE[CASS_TO_VESSEL_NAME[les.cass]], []).append(les.cass)
    sides = list(by_side)
    if phase == "PRE" and len(sides) == 1 and rng.random() < 0.8:
        sides.append("right" if sides[0] == "left" else "left")  # diagnostic run of the other side
    cines = []
    for side in sides:
        if side in by_side:  # views chosen for the lesion vessels
            targets = by_side[side]
        else:  # a diagnostic run of the other side: a view of its main vessel
            targets = [[12, 19][int(rng.integers(2))]] if side == "left" else [2]
        n_views = 2 if rng.random() < 0.35 else 1
        for _ in range(n_views):
            vessel = CASS_TO_VESSEL_NAME[int(targets[int(rng.integers(len(targets)))])]
            name, p, s = sample_view(rng, vessel)
            cines.append(_Cine(f"{pid}_{phase}_{len(cines) + 1}", phase, side, vessel, name, p, s))
    return cines


def _pseudo_label(rng: np.random.Generator, masks: Dict[int, np.ndarray], radius_mm: np.ndarray,
                  size: int, shape: Tuple[int, int]) -> np.ndarray:
    """The injected tree as a teacher model (DeepSA) would segment it: thin distal branches missed,
    a slightly dilated or eroded border, sometimes the catheter, a few false blobs; resized to
    ``size x size``."""
    H, W = shape
    tree = np.zeros(shape, bool)
    for lb, m in masks.items():
        if lb >= 0:
            tree |= m
    thin = rng.uniform(0.33, 0.6)  # radius (mm) below which the teacher loses vessels
    tree &= radius_mm >= thin
    u = rng.random()
    if u < 0.3:
        tree = ndimage.binary_dilation(tree)
    elif u < 0.45:
        tree = ndimage.binary_erosion(tree)
    if -1 in masks and rng.random() < 0.35:
        tree |= masks[-1]
    yy, xx = np.mgrid[0:H, 0:W]
    for _ in range(int(rng.poisson(1.2))):
        cy, cx = rng.uniform(0.1, 0.9) * H, rng.uniform(0.1, 0.9) * W
        ry, rx = rng.uniform(1.5, 5.0, 2) * H / 512.0 + 1.0
        tree |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return resize_nearest(tree, (size, size))


def _round_xy(xy: np.ndarray) -> List[List[float]]:
    return [[round(float(x), 2), round(float(y), 2)] for x, y in xy]


def _write_png_gray(path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, optimize=False)


def generate_patient(index: int, cfg: SyntheticConfig, out: Path, split: str) -> Tuple[List[dict], int]:
    """Render one patient into ``out`` (cines/, masks/, pseudo_labels/, contours/); return its CSV
    rows and the number of frames written."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
    pid = patient_id(index)
    anatomy = make_anatomy(rng)
    lesions = _plan_lesions(rng, anatomy)
    phases = ["PRE", "FINAL"] + (["EVENT"] if rng.random() < 0.25 else [])
    H = W = cfg.size
    rows: List[dict] = []
    n_frames = 0
    min_area = max(12, int(40 * (cfg.size / 512.0) ** 2))

    for phase in phases:
        pct = {les.cass: _phase_pct(rng, phase) for les in lesions}
        radius = {name: lesion_radius(b, [(les, pct[les.cass]) for les in lesions])
                  for name, b in anatomy.branches.items()}
        for cine in _plan_cines(rng, pid, phase, lesions):
            branches = [b for b in anatomy.branches.values() if b.side == cine.side]
            all_pts = np.concatenate([b.points for b in branches])
            view = CArmView(
                primary_deg=cine.primary, secondary_deg=cine.secondary, height=H, width=W,
                sid_mm=float(rng.uniform(1000.0, 1200.0)), sod_mm=float(rng.uniform(730.0, 780.0)),
                detector_spacing_mm=float(rng.uniform(165.0, 215.0)) / cfg.size,
                isocenter=tuple(float(v) for v in 0.6 * all_pts.mean(axis=0) + rng.normal(0.0, 6.0, 3)),
            )
            bg = background_attenuation(anatomy, view, rng)
            shutters = shutter_attenuation(rng, (H, W))
            mu_c = rng.uniform(*MU_CONTRAST)
            cath = catheter_path(anatomy, cine.side)
            cath_w = np.exp(-np.arange(len(cath)) / 40.0)  # the tip moves with the heart
            # contrast column fades beyond the arch (the shaft holds diluted contrast)
            cath_mu = MU_CATHETER * (0.45 + 0.55 * np.exp(-np.arange(len(cath)) / 180.0))
            max_path = max(float(b.path_mm[-1]) for b in branches)

            # Timeline: contrast arrives at k0 and has filled the tree by k_full; the cardiac cycle
            # runs at the patient's heart rate from a random phase; frame_index = most diastolic
            # well-filled frame.
            T = cfg.frames
            k_full = int(round(0.5 * (T - 1)))
            k0 = min(int(round(0.12 * T)), max(k_full - 1, 0))
            phase0 = rng.uniform(0.0, 2 * np.pi)
            breath0 = rng.uniform(0.0, 2 * np.pi)
            ks = np.arange(T)
            contraction = 0.5 * (1.0 - np.cos(2 * np.pi * ks / FPS * anatomy.heart_rate_bpm / 60.0 + phase0))
            breath = 2.5 * np.sin(2 * np.pi * ks / FPS / 4.0 + breath0)
            frame_index = int(k_full + np.argmin(contraction[k_full:]))

            def front(k: int) -> float:
                if k_full <= k0:
                    return np.inf
                return (max_path + 40.0) * (k - k0) / (k_full - k0)

            def frame_tubes(k: int) -> Tuple[List[Tube], Dict[str, np.ndarray]]:
                tubes, moved = [], {}
                fill_front = front(k)
                wash = 1.0 - 0.35 * max(0.0, (k - 0.8 * T) / max(0.2 * T, 1.0))
                for b in branches:
                    pts = cardiac_transform(anatomy, b.points, contraction[k], breath[k])
                    moved[b.name] = pts
                    fill = np.clip((fill_front - b.path_mm) / 25.0 + 0.5, 0.0, 1.0) * wash
                    if fill.max() <= 0:
                        continue
                    tubes.append(project_tube(view, pts, radius[b.name], mu_c * fill, b.cass))
                cpts = cardiac_transform(anatomy, cath, contraction[k], breath[k])
                cpts = cath + (cpts - cath) * cath_w[:, None]
                tubes.append(project_tube(view, cpts, np.full(len(cath), CATHETER_RADIUS_MM),
                                          cath_mu, np.full(len(cath), -1)))
                return tubes, moved

            tubes_ref, moved_ref = frame_tubes(frame_index)
            ref = render_tubes(tubes_ref, (H, W), want_masks=True)
            att_ref = bg + shutters + ref.attenuation
            exposure = make_exposure(rng, bg, cfg.size)
            frames = np.empty((T, H, W), np.float64)
            for k in range(T):
                att = att_ref if k == frame_index else bg + shutters + render_tubes(frame_tubes(k)[0], (H, W)).attenuation
                frames[k] = expose(att, exposure, rng)
            n_frames += T
            if cfg.cine_dtype == "uint8":
                cine_arr = np.round(frames * 255.0).astype(np.uint8)
            elif cfg.cine_dtype == "uint16":
                cine_arr = np.round(frames * 4095.0).astype(np.uint16)
            else:
                cine_arr = frames.astype(np.float32)
            cine_rel = f"cines/{cine.cine_id}.npy"
            np.save(out / cine_rel, cine_arr)

            pseudo = _pseudo_label(rng, ref.masks, ref.radius_mm, cfg.pseudo_label_size, (H, W))
            pseudo_rel = f"pseudo_labels/{cine.cine_id}.png"
            save_mask_png(out / pseudo_rel, pseudo)

            lesion_here = {les.cass: les for les in lesions}
            candidates = [c for c in DEFAULT_CLASS_IDS if c in ref.masks]
            if cfg.label == "lesions":
                candidates = [c for c in candidates if c in lesion_here]
            for c in candidates:
                seg_mask = ref.masks[c]
                if int(seg_mask.sum()) < min_area:
                    continue
                b = anatomy.branch_of_segment(c)
                sel = np.nonzero(b.cass == c)[0]
                xy, depth = view.project(moved_ref[b.name][sel])
                inside = (xy[:, 0] >= 0) & (xy[:, 0] <= W - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= H - 1)
                if inside.mean() < 0.5:
                    continue
                r_px = radius[b.name][sel] * view.pixels_per_mm(depth)
                tang = np.gradient(xy, axis=0)
                tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-9)
                normal_left = np.stack([tang[:, 1], -tang[:, 0]], axis=1)
                stenosis = None
                row_q = {"stenosis_pct": "", "mld_mm": "", "reference_diameter_mm": ""}
                les = lesion_here.get(c)
                if les is not None:
                    ref_d = 2.0 * float(b.radius_ref[les.index])
                    p = pct[c]
                    row_q = {
                        "stenosis_pct": f"{p:.1f}",
                        "mld_mm": f"{ref_d * (1 - p / 100.0):.2f}",
                        "reference_diameter_mm": f"{ref_d:.2f}",
                    }
                    if p >= 20.0:  # a residual narrowing after stenting is not a visible lesion
                        lxy, _ = view.project(moved_ref[b.name])
                        near = np.abs(b.arclen - b.arclen[les.index]) <= 0.5 * les.length_mm
                        seglen = float(np.sum(np.linalg.norm(np.diff(lxy[near], axis=0), axis=1)))
                        stenosis = {
                            "center": _round_xy(lxy[les.index: les.index + 1])[0],
                            "length_px": round(seglen, 2),
                            "length_mm": round(les.length_mm, 2),
                            "pct": round(p, 1),
                            "mld_mm": round(ref_d * (1 - p / 100.0), 2),
                            "reference_diameter_mm": round(ref_d, 2),
                        }
                tag = f"{cine.cine_id}_seg{c:02d}"
                mask_rel, contours_rel = f"masks/{tag}.png", f"contours/{tag}.json"
                save_mask_png(out / mask_rel, seg_mask)
                contours = {
                    "view_angles": {"primary": cine.primary, "secondary": cine.secondary},
                    "view_name": cine.view_name,
                    "frame_index": frame_index,
                    "frame_shape": [H, W],
                    "cass_segment": c,
                    "segment_name": cass_name(c),
                    "centerline": _round_xy(xy),
                    "diameters_px": [round(float(v), 2) for v in 2 * r_px],
                    "lumen_edges": {
                        "left": _round_xy(xy + r_px[:, None] * normal_left),
                        "right": _round_xy(xy - r_px[:, None] * normal_left),
                    },
                    "mm_per_pixel": round(view.mm_per_pixel, 5),
                    "geometry": {
                        "sid_mm": round(view.sid_mm, 2), "sod_mm": round(view.sod_mm, 2),
                        "detector_spacing_mm": round(view.detector_spacing_mm, 5),
                        "isocenter_mm": [round(v, 2) for v in view.isocenter],
                    },
                    "stenosis": stenosis,
                    "synthetic": True,
                }
                with open(out / contours_rel, "w", encoding="utf-8") as f:
                    json.dump(contours, f, separators=(",", ":"))
                rows.append({
                    "patient_id": pid,
                    "vessel_pattern": CASS_TO_PATTERN[c],
                    "phase": phase,
                    "vessel_name": CASS_TO_VESSEL_NAME[c],
                    "cine_path": cine_rel,
                    "frame_index": str(frame_index),
                    "contours_path": contours_rel,
                    "vessel_mask_actual_path": mask_rel,
                    "deepsa_pseudo_label_path": pseudo_rel,
                    "cass_segment": str(c),
                    "cass_segment_original": str(c),
                    "split": split,
                    **row_q,
                    "mm_per_pixel": f"{view.mm_per_pixel:.5f}",
                })
    return rows, n_frames


# --------------------------------------------------------------------------------------------------
# A data set


def _workers(workers: Optional[int], n_patients: int) -> int:
    if workers is None:
        if n_patients < 4:  # a process start costs more than rendering one or two patients
            return 1
        workers = int(os.environ.get("SAM3_ANGIO_GEN_WORKERS", "0")) or min(os.cpu_count() or 1, 8)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return min(workers, n_patients)


def _patients(cfg: SyntheticConfig, out: Path, splits: Dict[int, str], workers: int) -> Iterator[Tuple[List[dict], int]]:
    """``generate_patient`` for every patient, in patient order, on ``workers`` processes. Spawned, not
    forked: the caller may be a training process whose OpenMP threads a fork would leave locked."""
    indices = range(cfg.n_patients)
    if workers == 1:
        yield from (generate_patient(i, cfg, out, splits[i]) for i in indices)
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(generate_patient, indices, repeat(cfg), repeat(out), [splits[i] for i in indices])


def generate_dataset(
    out_dir: PathLike,
    n_patients: int = 24,
    seed: int = 0,
    frames: int = 12,
    size: int = 512,
    pseudo_label_size: int = 512,
    val_fraction: float = 0.25,
    cine_dtype: str = "uint8",
    label: str = "all",
    overwrite: bool = False,
    progress: bool = True,
    workers: Optional[int] = None,
) -> Path:
    """Write ``n_patients`` synthetic patients in the study's layout into ``out_dir`` (atomically:
    the folder appears complete or not at all) and return the CSV's path (``out_dir/angio.csv``).

    ``workers`` processes render patients side by side (default: one a CPU core, at most 8, or
    ``$SAM3_ANGIO_GEN_WORKERS``; 1 = in this process, the default below 4 patients). Every patient
    draws from its own seeded generator, so the files are the same bytes whatever the number of workers."""
    cfg = SyntheticConfig(n_patients, seed, frames, size, pseudo_label_size, val_fraction, cine_dtype, label)
    cfg.check()
    out_dir = Path(out_dir)
    splits = split_patients(n_patients, seed, val_fraction)
    t0 = time.perf_counter()
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        for sub in ("cines", "masks", "pseudo_labels", "contours"):
            (tmp / sub).mkdir()
        rows: List[dict] = []
        n_frames = 0
        last_print = t0
        for i, (r, f) in enumerate(_patients(cfg, tmp, splits, _workers(workers, n_patients))):
            rows.extend(r)
            n_frames += f
            if progress and time.perf_counter() - last_print > 5.0:
                last_print = time.perf_counter()
                print(f"  synthetic: {i + 1}/{n_patients} patients, {n_frames} frames, "
                      f"{last_print - t0:.1f} s", flush=True)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(ALL_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (tmp / CSV_NAME).write_text(buf.getvalue(), encoding="utf-8")
        elapsed = time.perf_counter() - t0
        write_manifest(tmp, {
            "kind": MANIFEST_KIND,
            "format_version": FORMAT_VERSION,
            "config": asdict(cfg),
            "csv": CSV_NAME,
            "n_rows": len(rows),
            "n_cines": len({r["cine_path"] for r in rows}),
            "n_frames_written": n_frames,
            "patients": {s: sorted(patient_id(i) for i, sp in splits.items() if sp == s) for s in ("train", "val")},
        })
    if progress:
        print(f"  synthetic: wrote {len(rows)} rows, {n_frames} frames in {elapsed:.1f} s "
              f"({n_frames / max(elapsed, 1e-9):.0f} frames/s) -> {out_dir}", flush=True)
    return out_dir / CSV_NAME
