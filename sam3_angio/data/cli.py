"""Command-line front ends of the data tools (``tools/make_synthetic.py``, ``tools/convert_to_coco.py``,
``tools/import_arcade.py``): argument parsing and user-facing errors; the work is in the package.
"""

from __future__ import annotations

import argparse
from typing import Callable, List, Optional

from sam3_angio.errors import run_cli

from .layout import TASKS


def _class_ids(text: Optional[str]) -> Optional[List[int]]:
    if not text:
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--class-ids must be comma-separated CASS numbers, got {text!r}") from None


def _run(fn: Callable[[], object], out: str) -> int:
    """Run ``fn``; a user mistake (UserError) becomes one ``error:`` message and exit status 2; any
    other exception is a bug and keeps its traceback."""
    def main() -> int:
        fn()
        return 0

    return run_cli(main, interrupted=f"interrupted; '{out}' was not written (or left as it was)")


def make_synthetic_main(argv: Optional[List[str]] = None) -> int:
    from .synthetic import generate_dataset

    ap = argparse.ArgumentParser(
        prog="make_synthetic.py",
        description="Write synthetic X-ray coronary angiograms in the study's CSV layout (CSV, cines, "
                    "segment masks, pseudo-labels, contours JSON). Same seed, same bytes.",
    )
    ap.add_argument("--out", required=True, help="output folder (written atomically)")
    ap.add_argument("--n-patients", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=12, help="frames per cine (T)")
    ap.add_argument("--size", type=int, default=512, help="frame height = width in pixels")
    ap.add_argument("--pseudo-size", type=int, default=512, help="pseudo-label size (DeepSA writes 512)")
    ap.add_argument("--val-fraction", type=float, default=0.25, help="fraction of patients in val")
    ap.add_argument("--cine-dtype", choices=("uint8", "uint16", "float32"), default="uint8")
    ap.add_argument("--label", choices=("all", "lesions"), default="all",
                    help="rows for every visible CASS segment (all) or only lesion segments (lesions)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    return _run(lambda: generate_dataset(
        a.out, n_patients=a.n_patients, seed=a.seed, frames=a.frames, size=a.size,
        pseudo_label_size=a.pseudo_size, val_fraction=a.val_fraction, cine_dtype=a.cine_dtype,
        label=a.label, overwrite=a.overwrite, progress=not a.quiet,
    ), a.out)


def convert_main(argv: Optional[List[str]] = None) -> int:
    from .coco_convert import convert_csv_to_coco

    ap = argparse.ArgumentParser(
        prog="convert_to_coco.py",
        description="Convert the study's CSV layout to COCO folders (<out>/<split>/annotations.json and "
                    "images/) for one task. cine_path may be a .npy, a DICOM XA file (its header fills view "
                    "angles and mm per pixel the row leaves open), a multi-page TIFF or a video.",
    )
    ap.add_argument("--csv", required=True, help="the study CSV (relative paths in it are taken from its folder)")
    ap.add_argument("--out", required=True, help="output folder (written atomically)")
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--skip-bad-rows", action="store_true",
                    help="leave bad rows out and write skipped_rows.json/.txt instead of stopping")
    ap.add_argument("--class-ids", type=_class_ids, default=None,
                    help="CASS class set for --task cass, e.g. 1,2,3,4,12,13 (default: the study's 14)")
    ap.add_argument("--allow-missing-angles", action="store_true",
                    help="accept rows without view angles (no view_angles in the contours JSON and none in a "
                         "DICOM cine's header): marked unknown")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    return _run(lambda: convert_csv_to_coco(
        a.csv, a.out, a.task, skip_bad_rows=a.skip_bad_rows, class_ids=a.class_ids,
        require_view_angles=not a.allow_missing_angles, overwrite=a.overwrite, progress=not a.quiet,
    ), a.out)


def import_arcade_main(argv: Optional[List[str]] = None) -> int:
    from .arcade import import_arcade

    ap = argparse.ArgumentParser(
        prog="import_arcade.py",
        description="Import an ARCADE COCO file (Popov et al., Sci Data 2024) into this project's COCO "
                    "layout: SYNTAX segments -> CASS (cass) or the stenosis category (stenosis).",
    )
    ap.add_argument("--coco", required=True, help="ARCADE annotations.json")
    ap.add_argument("--images", required=True, help="ARCADE image folder")
    ap.add_argument("--out", required=True, help="output folder (written atomically)")
    ap.add_argument("--task", required=True, choices=("cass", "stenosis"))
    ap.add_argument("--split", default="val", help="split folder name under --out (default: val)")
    ap.add_argument("--class-ids", type=_class_ids, default=None,
                    help="CASS class set for --task cass (default: the study's 14)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    return _run(lambda: import_arcade(
        a.coco, a.images, a.out, a.task, split=a.split, class_ids=a.class_ids, overwrite=a.overwrite,
        progress=not a.quiet,
    ), a.out)
