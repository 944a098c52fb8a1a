#!/usr/bin/env python
"""Memory-mapped single-frame read vs loading the whole cine, and data-pipeline throughput.

1. One frame of a (T=120, H, W) uint8 cine: ``sam3_angio.data.cine.read_frame`` (np.load with
   mmap_mode="r", copy one frame) against ``np.load(path)[k]`` (what reading the whole cine costs).
   Time per read (median of --reads random frames, page cache warm for both) and peak Python-heap
   memory (tracemalloc), same process; ratios full / mmap.
2. Generation throughput of the synthetic generator (frames written per second), at the demo's
   256 px / T=8 and at --gen-size / --gen-frames.
3. Conversion throughput (CSV -> COCO, images per second) on the generated set with its cines
   lengthened to T=120 (frames tiled), with the memory-mapped read and with a whole-cine read.

    python bench/bench_cine_read.py [--sizes 512 1016] [--reads 30] [--patients 4] [--gen-size 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

import sam3_angio.data.coco_convert as coco_convert  # noqa: E402
import sam3_angio.data.frame_files as frame_files  # noqa: E402
from sam3_angio.data.cine import read_frame  # noqa: E402
from sam3_angio.data.synthetic import generate_dataset  # noqa: E402


def read_whole(path, index):
    """The baseline: load the cine, then take the frame."""
    return np.array(np.load(path)[int(index)])


def measure(fn, path, frames):
    times, peaks = [], []
    for k in frames:
        tracemalloc.start()
        t = time.perf_counter()
        fn(path, k)
        times.append(time.perf_counter() - t)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), max(peaks)


def bench_read(tmp: Path, size: int, n_frames: int, reads: int) -> None:
    path = tmp / f"cine_{size}.npy"
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, (n_frames, size, size), dtype=np.uint8))
    mb = path.stat().st_size / 2**20
    frames = rng.integers(0, n_frames, reads)
    read_whole(path, 0), read_frame(path, 0)  # warm the page cache for both
    t_full, m_full = measure(read_whole, path, frames)
    t_mmap, m_mmap = measure(read_frame, path, frames)
    print(f"cine {n_frames}x{size}x{size} uint8 ({mb:.0f} MiB), {reads} random frames, warm page cache")
    print(f"  whole cine : {t_full * 1e3:8.2f} ms/frame   peak heap {m_full / 2**20:8.2f} MiB")
    print(f"  memory map : {t_mmap * 1e3:8.2f} ms/frame   peak heap {m_mmap / 2**20:8.2f} MiB")
    print(f"  ratio whole/mmap: time {t_full / t_mmap:.0f}x, peak memory {m_full / m_mmap:.0f}x")
    path.unlink()


def bench_generation(out: Path, patients: int, size: int, frames: int) -> Path:
    t = time.perf_counter()
    csv_path = generate_dataset(out, n_patients=patients, seed=0, frames=frames, size=size, progress=False)
    gen_s = time.perf_counter() - t
    n_written = sum(np.load(p, mmap_mode="r").shape[0] for p in (out / "cines").glob("*.npy"))
    print(f"generation: {patients} patients, {size} px, T={frames}: {n_written} frames in {gen_s:.1f} s "
          f"= {n_written / gen_s:.1f} frames/s")
    return csv_path


def bench_pipeline(tmp: Path, patients: int, size: int, frames: int) -> None:
    bench_generation(tmp / "syn_demo", patients, 256, 8)  # the embedded demo's settings
    csv_path = bench_generation(tmp / "syn", patients, size, frames)

    # Lengthen every cine to T=120 (tiled frames) so the whole-cine baseline pays a realistic price.
    long_dir = tmp / "syn_t120"
    shutil.copytree(tmp / "syn", long_dir)
    for p in (long_dir / "cines").glob("*.npy"):
        c = np.load(p)
        np.save(p, np.resize(c, (120,) + c.shape[1:]))
    results = {}
    for name, reader in (("memory map", read_frame), ("whole cine", read_whole)):
        frame_files.read_frame = reader  # what the converter's .npy reader calls for one frame
        out = tmp / f"coco_{name.replace(' ', '_')}"
        t = time.perf_counter()
        res = coco_convert.convert_csv_to_coco(long_dir / csv_path.name, out, "cass", progress=False)
        sec = time.perf_counter() - t
        n = sum(s["n_images"] for s in res["splits"].values())
        results[name] = n / sec
        print(f"conversion (cass, T=120 cines, {name}): {n} images in {sec:.2f} s = {n / sec:.1f} frames/s")
        shutil.rmtree(out)
    frame_files.read_frame = read_frame
    print(f"  conversion ratio mmap/whole: {results['memory map'] / results['whole cine']:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1016])
    ap.add_argument("--cine-frames", type=int, default=120)
    ap.add_argument("--reads", type=int, default=30)
    ap.add_argument("--patients", type=int, default=4)
    ap.add_argument("--gen-size", type=int, default=512)
    ap.add_argument("--gen-frames", type=int, default=12)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_cine_") as d:
        tmp = Path(d)
        for size in a.sizes:
            bench_read(tmp, size, a.cine_frames, a.reads)
        bench_pipeline(tmp, a.patients, a.gen_size, a.gen_frames)


if __name__ == "__main__":
    main()
