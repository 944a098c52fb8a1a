"""Command line of ``tools/qca.py``: QCA of one mask, of every annotation of a COCO file or of every
predicted mask; writes ``OUT/qca.json``, ``OUT/qca.csv`` and ``OUT/figures/`` atomically.

User mistakes (missing or unreadable file, empty or non-binary mask, bad spacing) print one
``error:`` line naming the file and exit 2; an existing output folder is left as it was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ..data.atomic import OutputExistsError, atomic_output_dir
from ..data.inputs import check_mm_per_pixel_flag
from ..errors import UserError
from .batch import FIGURES_DIR, QCAReport, run_items
from .errors import QCAInputError
from .measure import QCAParams
from .report import CSV_NAME, JSON_NAME, write_report
from .sources import iter_coco, iter_predictions, mask_file_item


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/qca.py",
        description="Quantitative coronary analysis from binary vessel/segment masks: centreline, diameter "
                    "profile, interpolated reference diameter, MLD, %% diameter stenosis, lesion length and "
                    "position. Writes OUT/qca.json, OUT/qca.csv and a figure per segment (docs/qca.md).",
        epilog="examples:\n"
               "  tools/qca.py --mask seg.png --mm-per-pixel 0.25 --image frame.png --out qca/\n"
               "  tools/qca.py --coco data/val/annotations.json --images data/val/images --out qca_val/\n"
               "  tools/qca.py --predictions preds.json --image-info data/val/annotations.json --out qca_pred/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mask", help="one binary mask (PNG or .npy, 0 = background)")
    src.add_argument("--coco", help="COCO annotations.json: every annotation is measured")
    src.add_argument("--predictions", help="COCO results list (predict.py output) with RLE masks")
    p.add_argument("--out", required=True, help="output folder (written atomically)")
    p.add_argument("--mm-per-pixel", help="pixel spacing in mm (typically 0.1-0.5; outside 0.02-2 is warned "
                                          "about); for --coco/--predictions where the records have none. Without "
                                          "it lengths are in pixels (keys end in _px)")
    p.add_argument("--image", help="--mask mode: the frame, for the figure")
    p.add_argument("--ostium", nargs=2, type=float, metavar=("X", "Y"),
                   help="--mask mode: a point (pixels) near the proximal end; default: the wider end")
    p.add_argument("--images", help="--coco/--predictions: folder with the frames (file_name), for figures")
    p.add_argument("--image-info", help="--predictions: COCO file whose images give file names and mm_per_pixel")
    p.add_argument("--min-score", type=float, default=0.5, help="--predictions: score threshold (default 0.5)")
    p.add_argument("--no-figures", action="store_true", help="write qca.json and qca.csv only")
    p.add_argument("--profile", action="store_true", help="add each diameter profile to qca.json")
    p.add_argument("--method", default="edge", choices=("edge", "edt", "edt_subpixel"),
                   help="diameter measurement (default: sub-pixel edges; see docs/qca.md)")
    p.add_argument("--detect-pct", type=float, default=QCAParams.detect_pct,
                   help=f"smallest %% diameter stenosis reported as a lesion (default {QCAParams.detect_pct:g})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p


def _run(args: argparse.Namespace) -> QCAReport:
    spacing = check_mm_per_pixel_flag(args.mm_per_pixel)
    params = QCAParams(method=args.method, detect_pct=args.detect_pct).check()
    if args.mask:
        items = [mask_file_item(args.mask, spacing, args.image, tuple(args.ostium) if args.ostium else None)]
        inputs = {"mask": args.mask, "image": args.image, "mm_per_pixel": spacing}
    elif args.coco:
        items = iter_coco(args.coco, args.images, spacing)
        inputs = {"coco": args.coco, "images": args.images, "mm_per_pixel": spacing}
    else:
        items = iter_predictions(args.predictions, args.image_info, args.images, args.min_score, spacing)
        inputs = {"predictions": args.predictions, "image_info": args.image_info, "images": args.images,
                  "min_score": args.min_score, "mm_per_pixel": spacing}
    with atomic_output_dir(args.out, overwrite=args.overwrite) as tmp:
        report = run_items(items, params, None if args.no_figures else tmp / FIGURES_DIR, strict=bool(args.mask),
                           progress=not args.mask)
        report.inputs = inputs
        if not report.segments:
            where = args.mask or args.coco or args.predictions
            if report.skipped:
                first = report.skipped[0]
                why = f"{len(report.skipped)} skipped, the first: {first['source']}: {first['error']}"
            else:
                why = "it holds no mask (or none above --min-score)"
            raise QCAInputError(f"nothing to measure in '{where}': {why}")
        write_report(report, tmp, profile=args.profile)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = _run(args)
    except (UserError, OutputExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; '{args.out}' was not written (or left as it was)", file=sys.stderr)
        return 130
    for s in report.skipped:
        print(f"warning: skipped {s['source']}: {s['error']}", file=sys.stderr)
    n_les = sum(len(s.lesions) for s in report.segments)
    print(f"qca: {len(report.segments)} segment(s), {n_les} lesion(s) -> {Path(args.out) / JSON_NAME}, {CSV_NAME}"
          + ("" if args.no_figures else f", {FIGURES_DIR}/"))
    return 0
