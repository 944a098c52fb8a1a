#!/usr/bin/env python
"""What mask IoU a SAM3 model's mask grid allows on a data set: the grid oracle of
``sam3_angio.evaluation.mask_grid`` (each cell's true vessel fraction as its logit, bilinear upsampling
and threshold as in inference) on every annotation of a COCO file, per grid.

A grid side comes from the model's input resolution (``4 * resolution / 14``: 64 for ``sam3_tiny`` at
224 px, 288 for the real SAM3 at 1008 px) or is given directly. Printed per grid: the oracle's mean /
median / min IoU and the fraction of instances at IoU >= 0.5 (what COCO segm AP50 and end-to-end naming
need) and >= 0.75, with the ratio of that fraction against the finest grid measured in the same run.

    python bench/bench_mask_grid.py --coco data/synthetic_demo/coco_cass/val/annotations.json
    python bench/bench_mask_grid.py --coco ANN.json --resolutions 224 448 1008 --grids 128
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pycocotools.mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam3_angio.evaluation.mask_grid import grid_for_resolution, oracle_iou, summarize  # noqa: E402
from sam3_angio.data.rle import to_rle  # noqa: E402


def _masks(coco_path: Path, limit: int):
    try:
        coco = json.loads(coco_path.read_text(encoding="utf-8"))
        images = {im["id"]: im for im in coco["images"]}
        anns = coco["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"error: {coco_path}: not a readable COCO annotations file ({exc})")
    out = []
    for ann in anns[:limit] if limit else anns:
        im = images.get(ann.get("image_id"))
        if im is None or "segmentation" not in ann:
            continue
        rle = to_rle(ann["segmentation"], int(im["height"]), int(im["width"]))
        out.append(mask_utils.decode(rle))
    if not out:
        raise SystemExit(f"error: {coco_path}: no annotation with a segmentation")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coco", type=Path, required=True, help="COCO annotations.json (RLE or polygons)")
    ap.add_argument("--resolutions", type=int, nargs="*", default=[224, 1008],
                    help="model input sizes (px); each gives the grid 4 * r / 14 (default 224 1008)")
    ap.add_argument("--grids", type=int, nargs="*", default=[], help="grid sides to add directly")
    ap.add_argument("--limit", type=int, default=0, help="first N annotations only (0: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    args = ap.parse_args(argv)

    grids = sorted({grid_for_resolution(r) for r in args.resolutions} | set(args.grids))
    masks = _masks(args.coco, args.limit)
    h, w = masks[0].shape
    print(f"{args.coco}: {len(masks)} masks (first {h} x {w} px); grids {grids}")
    rows = {}
    for g in grids:
        t0 = time.perf_counter()
        rows[g] = summarize([oracle_iou(m, g) for m in masks])
        rows[g]["seconds"] = round(time.perf_counter() - t0, 2)
    best = rows[grids[-1]]["frac_iou_ge_0.5"]
    print(f"{'grid':>6} {'mean IoU':>9} {'median':>7} {'min':>6} {'IoU>=0.5':>9} {'IoU>=0.75':>10} {'ratio':>6}")
    for g in grids:
        r = rows[g]
        ratio = r["frac_iou_ge_0.5"] / best if best else float("nan")
        print(f"{g:>6} {r['mean_iou']:>9.3f} {r['median_iou']:>7.3f} {r['min_iou']:>6.3f} "
              f"{r['frac_iou_ge_0.5']:>9.3f} {r['frac_iou_ge_0.75']:>10.3f} {ratio:>6.2f}")
    print(f"ratio: the fraction at IoU >= 0.5 against grid {grids[-1]} (the finest measured)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"coco": str(args.coco), "n_masks": len(masks),
                                        "grids": {str(g): rows[g] for g in grids}}, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
