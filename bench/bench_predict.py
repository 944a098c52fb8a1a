#!/usr/bin/env python
"""Speed and memory of prediction against the training forward of the same frames, in one process.

Model: ``sam3_tiny`` (random init) in the CASS config, CPU. Frames: the first N of the synthetic demo's
train split (``ensure_demo_data``, 256 px, CASS task, 14 text queries a frame), val transforms for every
phase. Phases, interleaved over
``--repeat`` rounds (best time and highest memory of each kept):

- ``predict``: ``Predictor.predict`` on the N frames (no_grad, eval; batches of the predictor's batch size,
  postprocessing and naming included) - what ``tools/predict.py`` runs per input;
- ``predict+outputs``: the same through ``sam3_angio.inference.cli.predict_input``, which also writes
  predictions.json, segments.csv, an overlay a frame and the GIF (threshold: the 10th best score of a
  frame, so about 10 labelled segments a frame, as a trained model gives);
- ``train forward``: ``model.train()`` forward + the config's loss on the same frames (batches of 2, with
  grad, no backward) - the baseline.

Memory: peak RSS above the RSS at the start of the phase (sampled every 5 ms by a thread, after
``gc.collect()`` and glibc's ``malloc_trim`` so that memory freed by the previous phase is not reused
unseen), and the tracemalloc peak (Python objects only: torch tensors are not traced).

    python bench/bench_predict.py [--frames 8] [--repeat 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402


class PeakRSS:
    """Peak resident memory above the start of a ``with`` block, sampled by a thread."""

    def __init__(self, every_s: float = 0.005):
        self.every_s, self.proc = every_s, psutil.Process()

    def __enter__(self):
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc
            pass
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        tracemalloc.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.every_s)

    def __exit__(self, *exc):
        self.py_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.delta_mb = (self.peak - self.start) / 2**20


def build(data_root: str, split: str):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sam3_angio import cpu_compat
    from sam3_angio.config import compose, finalize, register_resolvers
    from sam3_angio.inference import Predictor

    cpu_compat.apply()
    register_resolvers()
    coco = os.path.join(data_root, "coco_cass", split)  # read through the val dataset (val transforms)
    cfg = finalize(compose("cass", [f"paths.data_root={data_root}", "model.name=sam3_tiny",
                                    "data.demo.generate_if_missing=false",
                                    f"data.val_json={coco}/annotations.json", f"data.val_images={coco}/images"]))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    torch.manual_seed(0)
    model = instantiate(cfg.trainer.model, _convert_="all")
    loss_fn = instantiate(cfg.scratch.angio_loss)
    return cfg, Predictor(model, cfg), loss_fn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", help="a data root with coco_cass/ (default: a temporary synthetic demo)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from hydra.utils import instantiate

    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.data.inputs import read_input
    from sam3_angio.inference.cli import predict_input
    from sam3_angio.model.builders import banner
    from sam3_angio.training.launch import ensure_process_group

    ensure_process_group()  # SAM3's losses all-reduce their normaliser
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or tmp
        if not args.data:
            ensure_demo_data(root, "cass", n_patients=max(6, args.frames), size=256, frames=4,
                             verbose=False)
        cfg, predictor, loss_fn = build(root, "train")  # the larger split: N frames for small N
        print(banner(predictor.info.model))
        # The same frames for every phase: the val split through the config's val dataset (targets for the loss).
        val = cfg.trainer.data.val
        dataset, collate = instantiate(val.dataset), instantiate(val.collate_fn)
        n = min(args.frames, len(dataset))
        items = [dataset[i] for i in range(n)]
        batches = [collate(items[i:i + 2])[val.collate_fn.dict_key] for i in range(0, n, 2)]
        frames = [np.asarray(dp.raw_images[0].convert("L")) for dp in items]  # (H, W) uint8 as read
        views = [dp.view for dp in items]
        np.save(os.path.join(tmp, "bench_cine.npy"), np.stack(frames))
        cine_frames = [replace(f, view_angles=v, angles_source="coco")
                       for f, v in zip(read_input(os.path.join(tmp, "bench_cine.npy")), views)]

        first = predictor.predict(frames, views)
        thr = float(np.median([sorted((p["score"] for p in ps), reverse=True)[min(9, len(ps) - 1)]
                               for ps in first if ps]))

        def predict():
            predictor.predict(frames, views)

        def predict_outputs(k=[0]):
            k[0] += 1
            out = os.path.join(tmp, f"out{k[0]}")
            predict_input(predictor, cine_frames, Path(out),
                          Namespace(frames="all", angles=None, mm_per_pixel=None, score_thr=thr, overwrite=False))

        def train_forward():
            model = predictor.model
            model.train()
            try:
                for b in batches:
                    outputs = model(b)
                    targets = [model.back_convert(t) for t in b.find_targets]
                    loss_fn(outputs, targets)["core_loss"].item()
            finally:
                model.eval()

        phases = {"predict": predict, "predict+outputs": predict_outputs, "train forward": train_forward}
        best = {k: float("inf") for k in phases}
        mem = {k: 0.0 for k in phases}
        py = {k: 0.0 for k in phases}
        devnull = open(os.devnull, "w")
        for _ in range(args.repeat):
            for name, fn in phases.items():
                with PeakRSS() as m:
                    t0 = time.perf_counter()
                    stdout, sys.stdout = sys.stdout, devnull  # predict_input's console lines
                    try:
                        fn()
                    finally:
                        sys.stdout = stdout
                    dt = time.perf_counter() - t0
                best[name] = min(best[name], dt)
                mem[name] = max(mem[name], m.delta_mb)
                py[name] = max(py[name], m.py_peak / 2**20)
        devnull.close()

    print(f"{n} frames of {frames[0].shape[1]}x{frames[0].shape[0]} px, {args.threads} threads, best of "
          f"{args.repeat}; outputs at score >= {thr:.3f} (about 10 segments a frame)")
    print(f"{'phase':18s} {'s':>7s} {'frames/s':>9s} {'peak RSS +MB':>13s} {'py peak MB':>11s}")
    for name in phases:
        print(f"{name:18s} {best[name]:7.2f} {n / best[name]:9.2f} {mem[name]:13.1f} {py[name]:11.1f}")
    base = best["train forward"]
    print(f"ratio predict / train forward: time {best['predict'] / base:.2f}, frames/s "
          f"{base / best['predict']:.2f}x, peak RSS {mem['predict'] / max(mem['train forward'], 1e-9):.2f}")
    print(f"ratio predict+outputs / train forward: time {best['predict+outputs'] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
