#!/usr/bin/env python
"""QCA reproducibility on real segment masks: the same annotation measured again after an exact
rotation, mirror or transpose of the pixel grid, and rasterised from its polygon at twice the size.

Nothing about the vessel changes under these, so a perfectly reproducible QCA would report the same
% diameter stenosis each time; what it reports instead is the method's own repeatability (its
skeleton, end handling and thresholded lesion decisions), the analogue of a QCA system's
intra-observer variability. Measured per annotation: the worst lesion's % DS (0 when no lesion is
reported) and the segment's % DS (the narrowest point relative to the reference, reported with or
without a lesion), against the annotation as given; printed as median / 90th percentile of |difference|
in points, the share of annotations off by more than 1 and 10 points, and how often the transformed
copy agrees on whether there is a lesion. The plain 2 x EDT width method runs on the same masks in the
same process as the baseline (ratio = ours / baseline of the share off by more than 10 points).

    python bench/bench_qca_repro.py [--coco ../shared/data/arcade/syntax_val/annotations.json] [--limit 300]

Data: ARCADE (Popov et al., Sci Data 11 (2024), doi:10.1038/s41597-023-02871-z), segment polygons as
annotated; no pixel spacing is known, so 1 px = 1 unit (% DS is a ratio and does not need one).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sam3_angio.qca import QCAParams, measure_mask  # noqa: E402
from sam3_angio.qca.errors import QCAInputError  # noqa: E402

ARCADE = Path(__file__).resolve().parents[2] / "shared" / "data" / "arcade" / "syntax_val" / "annotations.json"
TRANSFORMS = ("rot90", "mirror", "transpose", "raster_2x")


def _raster(ann: dict, h: int, w: int, k: int = 1) -> np.ndarray:
    seg = ann["segmentation"]
    if isinstance(seg, list):  # polygons: rasterised at k times the size from the same vertices
        polys = [[v * k for v in p] for p in seg]
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h * k, w * k))).astype(bool)
    if k != 1:
        raise ValueError("only polygons can be rasterised at another size")
    rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg
    return mask_utils.decode(rle).astype(bool)


def _views(ann: dict, h: int, w: int) -> Dict[str, np.ndarray]:
    m = _raster(ann, h, w)
    out = {"base": m, "rot90": np.rot90(m), "mirror": m[:, ::-1], "transpose": m.T}
    if isinstance(ann["segmentation"], list):
        out["raster_2x"] = _raster(ann, h, w, 2)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _measure(mask: np.ndarray, params: QCAParams):
    q = measure_mask(mask, params=params)
    worst = max((les.percent_diameter_stenosis for les in q.lesions), default=0.0)
    open_end = any(les.open_end for les in q.lesions)
    return float(worst), float(q.percent_diameter_stenosis), bool(q.lesions), open_end


def run(coco_path: Path, limit: int, methods: List[str]) -> Dict:
    coco = json.loads(coco_path.read_text(encoding="utf-8"))
    images = {im["id"]: im for im in coco["images"]}
    anns = [a for a in coco["annotations"] if a.get("segmentation")][: limit or None]
    results: Dict[str, Dict] = {}
    for method in methods:
        params = QCAParams(method=method)
        per = {t: {"worst": [], "segment": [], "agree": [], "open_end": []} for t in TRANSFORMS}
        skipped, t0 = 0, time.perf_counter()
        for ann in anns:
            im = images[ann["image_id"]]
            try:
                views = _views(ann, int(im["height"]), int(im["width"]))
                base = _measure(views.pop("base"), params)
                for name, mask in views.items():
                    v = _measure(mask, params)
                    per[name]["worst"].append(abs(v[0] - base[0]))
                    per[name]["segment"].append(abs(v[1] - base[1]))
                    per[name]["agree"].append(v[2] == base[2])
                    per[name]["open_end"].append(base[3] or v[3])
            except QCAInputError:
                skipped += 1
        summary = {}
        for name, r in per.items():
            if not r["worst"]:
                continue
            worst, seg = np.asarray(r["worst"]), np.asarray(r["segment"])
            ends = np.asarray(r["open_end"])
            summary[name] = {
                "n": int(worst.size),
                "worst_median": float(np.median(worst)), "worst_p90": float(np.percentile(worst, 90)),
                "worst_gt1": float(np.mean(worst > 1)), "worst_gt10": float(np.mean(worst > 10)),
                "segment_median": float(np.median(seg)), "segment_p90": float(np.percentile(seg, 90)),
                "segment_gt10": float(np.mean(seg > 10)),
                "lesion_agreement": float(np.mean(r["agree"])),
                "gt10_interior": float(np.mean(worst[~ends] > 10)) if (~ends).any() else float("nan"),
                "gt10_open_end": float(np.mean(worst[ends] > 10)) if ends.any() else float("nan"),
                "share_open_end": float(np.mean(ends)),
            }
        results[method] = {"transforms": summary, "skipped": skipped,
                           "seconds": round(time.perf_counter() - t0, 1), "n_annotations": len(anns)}
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--coco", type=Path, default=ARCADE, help="COCO annotations with segment masks (polygons "
                    "for the 2x rasterisation); default ARCADE syntax_val")
    ap.add_argument("--limit", type=int, default=300, help="first N annotations (0: all)")
    ap.add_argument("--methods", nargs="+", default=["edge", "edt"], help="width methods; the first is "
                    "ours, the others baselines")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    if not args.coco.is_file():
        print(f"error: {args.coco}: no such COCO file (pass --coco)", file=sys.stderr)
        return 2
    res = run(args.coco, args.limit, args.methods)
    for method, r in res.items():
        print(f"\n{method}: {r['n_annotations']} annotations ({r['skipped']} not measurable), {r['seconds']} s")
        print(f"  {'transform':<10} {'worst %DS |diff| med/p90':>25} {'>1 pt':>6} {'>10 pt':>7} "
              f"{'segment %DS med/p90':>20} {'lesion agree':>13} {'>10 interior / at an end':>25}")
        for name, s in r["transforms"].items():
            print(f"  {name:<10} {s['worst_median']:>12.2f} / {s['worst_p90']:<10.1f} {s['worst_gt1']:>6.3f} "
                  f"{s['worst_gt10']:>7.3f} {s['segment_median']:>9.2f} / {s['segment_p90']:<8.1f} "
                  f"{s['lesion_agreement']:>13.3f} {s['gt10_interior']:>12.3f} / {s['gt10_open_end']:<10.3f}")
    ours, *baselines = list(res)
    for b in baselines:
        for name, s in res[ours]["transforms"].items():
            base = res[b]["transforms"].get(name, {}).get("worst_gt10")
            ratio = f"{s['worst_gt10'] / base:.2f}" if base else f"n/a ({b}: none off by > 10)"
            print(f"ratio {ours} / {b} ({name}): share off by > 10 points {ratio}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
