#!/usr/bin/env python
"""``frames="best"``: how often the chosen frame is fully opacified, against baselines, on synthetic cines.

Truth: the synthetic generator's contrast timeline (sam3_angio/data/synthetic/generator.py, "Timeline"):
contrast arrives at k0 = round(0.12 T), its front runs down the tree until k_full = round(0.5 (T - 1)),
and it washes out after 0.8 T. The per-frame truth is the fraction of the injected tree filled,
``mean over the tree's centerline samples of clip((front_k - path_mm) / 25 + 0.5, 0, 1) * wash_k``,
recomputed here from the patient's anatomy (regenerated from its seed: ``make_anatomy`` is the first
draw of the patient's generator). A frame is fully opacified when that fraction is >= 0.999.

Runs: the whole generated run (T frames: the full window is always in the middle, so the middle frame
is right by construction), and windows of T/2 frames cut every T/8 frames that hold at least one fully
opacified frame (a cine recorded from another moment of the injection). Conditions: ``clean`` (the
generator's frames) and ``breathing`` (a diaphragm-like dark band, 30 grey levels, sweeping 12 % of the
height with a 4 s breathing period, and a 2 % frame-to-frame gain jitter: what moves the mean of real
cines and not their vessels).

Rules, on the frames as ``read_input`` gives them ((H, W) uint8, uint16 cines windowed per frame):
- ``best``: sam3_angio.data.frame_selection (top-hat score, 0.6 s moving average, argmax) - the rule
  ``frames="best"`` uses;
- ``argmax top-hat``: the same score, frame-wise argmax;
- ``darkest (smoothed)``: lowest mean grey, with the same moving average;
- ``middle``: frame T // 2;
- ``argmax frangi``: skimage frangi (black ridges, sigmas 1-3) on the same 128 px copy (``--frangi``).
Printed: fully-opacified rate, >= 95 %-filled rate, mean filled fraction of the chosen frame, scoring
time per frame (this machine), and ratio lines of ``best`` against the baselines.

    python bench/bench_best_frame.py [--patients 8] [--frames 40] [--size 256] [--dtypes uint8 uint16]
                                     [--seed 0] [--frangi]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from sam3_angio.data.frame_selection import DEFAULT_FPS, choose_best, downsample, opacification_score  # noqa: E402
from sam3_angio.data.inputs import read_input  # noqa: E402
from sam3_angio.data.layout import read_csv_rows  # noqa: E402
from sam3_angio.data.synthetic import generate_dataset  # noqa: E402
from sam3_angio.data.synthetic.anatomy import make_anatomy  # noqa: E402

FULL = 0.999


def fill_truth(csv_path: Path, seed: int, T: int) -> dict:
    """``{cine path: (T,) fraction of the injected tree filled}``, from the generator's timeline."""
    sides = {}
    for _, _, cells in read_csv_rows(csv_path):
        sides.setdefault(cells["cine_path"], (cells["patient_id"], int(cells["cass_segment"])))
    k_full = int(round(0.5 * (T - 1)))
    k0 = min(int(round(0.12 * T)), max(k_full - 1, 0))
    anatomies, out = {}, {}
    for cine, (pid, cass) in sides.items():
        index = int(pid[3:]) - 1  # SYN0001 -> patient 0
        if index not in anatomies:
            anatomies[index] = make_anatomy(np.random.default_rng(np.random.SeedSequence([seed, index])))
        anatomy = anatomies[index]
        side = anatomy.branch_of_segment(cass).side
        path_mm = np.concatenate([b.path_mm for b in anatomy.branches.values() if b.side == side])
        max_path = float(path_mm.max())
        fills = []
        for k in range(T):
            front = np.inf if k_full <= k0 else (max_path + 40.0) * (k - k0) / (k_full - k0)
            wash = 1.0 - 0.35 * max(0.0, (k - 0.8 * T) / max(0.2 * T, 1.0))
            fills.append(float(np.mean(np.clip((front - path_mm) / 25.0 + 0.5, 0.0, 1.0) * wash)))
        out[str(csv_path.parent / cine)] = np.array(fills)
    return out


def frangi_score(image: np.ndarray) -> float:
    from skimage.filters import frangi

    return float(frangi(downsample(image), sigmas=(1, 2, 3), black_ridges=True).mean())


def breathing(images, rng):
    """The ``breathing`` condition: a smooth dark band moving with respiration, and gain jitter."""
    H = images[0].shape[0]
    yy = np.arange(H, dtype=np.float32)[:, None]
    phase, out = rng.uniform(0.0, 2 * np.pi), []
    for k, im in enumerate(images):
        edge = H * (0.78 + 0.12 * np.sin(2 * np.pi * k / (4.0 * DEFAULT_FPS) + phase))
        band = 30.0 / (1.0 + np.exp(-(yy - edge) / (0.03 * H)))
        gain = 1.0 + 0.02 * rng.standard_normal()
        out.append(np.clip(im.astype(np.float32) * gain - band, 0, 255).astype(np.uint8))
    return out


def choose(tophat, dark, frangi=None) -> dict:
    """Frame index chosen by each rule on one run's per-frame scores."""
    out = {
        "best": choose_best(tophat),
        "argmax top-hat": int(np.argmax(tophat)),
        "darkest (smoothed)": choose_best(-dark),
        "middle": len(tophat) // 2,
    }
    if frangi is not None:
        out["argmax frangi"] = int(np.argmax(frangi))
    return out


def run(args, tmp: Path) -> None:
    rng = np.random.default_rng(args.seed)
    T = args.frames
    L = T // 2
    print(f"{'condition':>40s} {'rule':20s} {'full':>5s} {'>=95%':>6s} {'fill':>6s} {'ms/frame':>9s}")
    for dtype in args.dtypes:
        csv_path = generate_dataset(tmp / dtype, n_patients=args.patients, seed=args.seed, frames=T,
                                    size=args.size, pseudo_label_size=64, cine_dtype=dtype, progress=False)
        truth = fill_truth(csv_path, args.seed, T)
        seconds, n_frames = defaultdict(float), 0
        chosen = defaultdict(lambda: defaultdict(list))
        counts = defaultdict(int)
        for cine, fill in truth.items():
            clean = [f.image for f in read_input(cine, frames="all")]
            for cond, images in (("clean", clean), ("breathing", breathing(clean, rng))):
                t = time.perf_counter()
                tophat = np.array([opacification_score(im) for im in images])
                seconds["best"] += time.perf_counter() - t
                t = time.perf_counter()
                dark = np.array([float(im.mean()) for im in images])
                seconds["darkest (smoothed)"] += time.perf_counter() - t
                n_frames += len(images)
                frangi = None
                if args.frangi:
                    t = time.perf_counter()
                    frangi = np.array([frangi_score(im) for im in images])
                    seconds["argmax frangi"] += time.perf_counter() - t
                for rule, k in choose(tophat, dark, frangi).items():
                    chosen[(cond, "whole")][rule].append(fill[k])
                counts[(cond, "whole")] += 1
                for s0 in range(0, T - L + 1, max(1, T // 8)):
                    f = fill[s0: s0 + L]
                    if f.max() < FULL:
                        continue
                    counts[(cond, "window")] += 1
                    sl = slice(s0, s0 + L)
                    for rule, k in choose(tophat[sl], dark[sl], None if frangi is None else frangi[sl]).items():
                        chosen[(cond, "window")][rule].append(f[k])
        seconds["argmax top-hat"] = seconds["best"]
        for (cond, which), by_rule in chosen.items():
            n = counts[(cond, which)]
            label = (f"{dtype} {cond}: {n} whole runs of {T}" if which == "whole"
                     else f"{dtype} {cond}: {n} windows of {L}")
            res = {}
            for rule, fills in by_rule.items():
                f = np.array(fills)
                res[rule] = float(np.mean(f >= FULL))
                print(f"{label:>40s} {rule:20s} {res[rule]:5.2f} {np.mean(f >= 0.95):6.2f} {f.mean():6.3f} "
                      f"{1000.0 * seconds.get(rule, 0.0) / max(n_frames, 1):9.2f}")
            b = res["best"]
            ratios = ", ".join(f"{base} {b / max(res[base], 1e-9):.2f}x" for base in
                               ("argmax top-hat", "darkest (smoothed)", "middle"))
            print(f"{'':>40s} ratio of fully-opacified rates, best / baseline: {ratios}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", type=int, default=8)
    p.add_argument("--frames", type=int, default=40, help="frames per generated run (T)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--dtypes", nargs="+", default=["uint8", "uint16"], choices=["uint8", "uint16", "float32"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frangi", action="store_true", help="also time and score Frangi vesselness (slow)")
    with tempfile.TemporaryDirectory(prefix="bench_best_frame_") as tmp:
        run(p.parse_args(), Path(tmp))


if __name__ == "__main__":
    main()
