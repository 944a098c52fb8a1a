#!/usr/bin/env python
"""Times ``evaluate_files`` against a direct pycocotools COCOeval call (bbox + segm) on the same files.

Synthetic ground truth: N images (default 1,000) x the 14 default CASS classes, one vessel-like ribbon
each, 512 x 512; predictions: jittered copies as RLE + boxes, 10% dropped, 2 false positives an image.
Prints seconds and the ratio ours / COCOeval (best of ``--repeat`` runs each, interleaved).

    python bench/bench_eval.py [--images 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from sam3_angio.cass import DEFAULT_CLASS_IDS, coco_categories  # noqa: E402
from sam3_angio.evaluation import evaluate_files  # noqa: E402
from sam3_angio.evaluation.synthetic import jittered_predictions, synthetic_coco  # noqa: E402


def direct_cocoeval(gt_path: str, pred_path: str) -> dict:
    """The baseline: what a user would write with pycocotools alone (both iou types)."""
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        for t in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(pred_path), t)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[t] = float(ev.stats[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    t0 = time.perf_counter()
    gt = synthetic_coco(args.images, cat_ids=DEFAULT_CLASS_IDS, size=args.size, seed=0)
    gt["categories"] = coco_categories()
    preds = jittered_predictions(gt, seed=1)
    with tempfile.TemporaryDirectory() as d:
        gt_path, pred_path, out_dir = (os.path.join(d, n) for n in ("gt.json", "pred.json", "out"))
        with open(gt_path, "w") as f:
            json.dump(gt, f)
        with open(pred_path, "w") as f:
            json.dump(preds, f)
        print(f"data: {args.images} images x {len(DEFAULT_CLASS_IDS)} classes, {len(gt['annotations'])} GT, "
              f"{len(preds)} predictions ({time.perf_counter() - t0:.1f} s to make)")

        best = {"cocoeval": float("inf"), "ours": float("inf"), "ours+report": float("inf")}
        ref = ours = None
        for _ in range(args.repeat):
            t = time.perf_counter()
            ref = direct_cocoeval(gt_path, pred_path)
            best["cocoeval"] = min(best["cocoeval"], time.perf_counter() - t)
            t = time.perf_counter()
            ours = evaluate_files(gt_path, pred_path)
            best["ours"] = min(best["ours"], time.perf_counter() - t)
        t = time.perf_counter()
        evaluate_files(gt_path, pred_path, out_dir)
        best["ours+report"] = time.perf_counter() - t

    assert ours["bbox.AP"] == ref["bbox"] and ours["segm.AP"] == ref["segm"], (ours["segm.AP"], ref)
    print(f"segm AP {ours['segm.AP']:.4f}, bbox AP {ours['bbox.AP']:.4f} (identical to COCOeval's)")
    print(f"direct COCOeval bbox+segm:                  {best['cocoeval']:7.2f} s")
    print(f"evaluate_files (+ per class, Dice, F1):     {best['ours']:7.2f} s   ratio {best['ours'] / best['cocoeval']:.2f}")
    print(f"evaluate_files + metrics.json + report.md:  {best['ours+report']:7.2f} s   ratio {best['ours+report'] / best['cocoeval']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
