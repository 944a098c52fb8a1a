"""Command line of ``tools/eval.py``: evaluate a predictions file, or a checkpoint on a data split.

Two modes: ``--gt GT.json --pred PRED.json`` (a COCO results file from any model) and
``-c CONFIG --checkpoint CKPT [--split val]`` (runs our model through
``sam3_angio.training.predict.predict_split`` and evaluates what it writes, with the same code).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from .errors import EvaluationInputError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/eval.py",
        description=(
            "COCO AP (bbox, segm, per class), full-tree Dice/IoU, the ARCADE challenge F1 and CASS "
            "accuracy. Writes OUT/metrics.json (flat dotted keys, see docs/evaluation.md) and OUT/report.md."
        ),
        epilog=(
            "examples:\n"
            "  tools/eval.py --gt data/val/annotations.json --pred preds.json --out eval/ --images data/val/images\n"
            "  tools/eval.py -c configs/angiography/cass.yaml --checkpoint runs/cass/checkpoint.pt --split val"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("predictions file mode")
    src.add_argument("--gt", help="COCO ground truth (annotations.json of the split)")
    src.add_argument("--pred", help="COCO results list (bbox and/or segmentation: RLE or polygons)")
    mod = p.add_argument_group("model mode")
    mod.add_argument("-c", "--config", help="training config (path or name) whose model to run")
    mod.add_argument("--checkpoint", help="checkpoint.pt to evaluate")
    mod.add_argument("--split", default="val", help="data split to run on (default: val)")
    mod.add_argument("overrides", nargs="*", help="Hydra overrides for the config, e.g. paths.data_root=/data")
    out = p.add_argument_group("output and options")
    out.add_argument("--out", help="output folder for metrics.json, report.md, pictures (model mode default: outputs/eval/<config>_<split>)")
    out.add_argument("--images", help="folder with the frames (file_name of the ground truth), for overlay pictures")
    out.add_argument("--iou-types", nargs="+", default=["bbox", "segm"], choices=["bbox", "segm"], help="COCO AP types (default: bbox segm)")
    out.add_argument("--score-thr", type=float, default=0.5, help="score threshold for Dice/IoU/F1 (AP uses all scores; default 0.5)")
    out.add_argument("--arcade-task", default="auto", choices=["auto", "segmentation", "stenosis"], help="ARCADE F1 rules (default: auto)")
    out.add_argument("--cass", default="auto", choices=["auto", "on", "off"], help="CASS classification metrics (default: auto)")
    out.add_argument("--cass-label-key", help="image field holding the class label (default: cass_id/cass_segment/category_id)")
    out.add_argument("--cass-logits", help="JSON with a CASS head's logits: {class_ids: [...], predictions: [{image_id, logits}]}")
    out.add_argument("--strict", action="store_true", help="any unusable prediction is an error (default: counted and reported)")
    out.add_argument("--allow-empty", action="store_true", help="evaluate an empty predictions list (AP 0) instead of stopping")
    out.add_argument("--no-report", action="store_true", help="write metrics.json only, no report.md or pictures")
    out.add_argument("--overlays", type=int, default=4, help="number of frames drawn with --images (default 4)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    file_mode = args.gt is not None or args.pred is not None
    model_mode = args.config is not None or args.checkpoint is not None
    if file_mode and args.pred is None or (not model_mode and args.gt is None):
        parser.error("give --gt GT.json --pred PRED.json, or -c CONFIG --checkpoint CKPT")
    if model_mode and (args.config is None or args.checkpoint is None):
        parser.error("model mode needs both -c CONFIG and --checkpoint CKPT")
    if model_mode and args.pred is not None:
        parser.error("--pred and -c/--checkpoint are two different modes: use one")
    try:
        if model_mode:
            gt_json, pred_json, out_dir, logits = _run_model(args)
            args.cass_logits = args.cass_logits or logits
        else:
            gt_json, pred_json, out_dir = args.gt, args.pred, args.out
        from .evaluate import evaluate_files
        from .keys import format_summary

        metrics = evaluate_files(
            gt_json,
            pred_json,
            out_dir,
            tuple(args.iou_types),
            images_dir=args.images,
            score_thr=args.score_thr,
            arcade_task=args.arcade_task,
            cass={"auto": "auto", "on": True, "off": False}[args.cass],
            cass_label_key=args.cass_label_key,
            cass_logits=args.cass_logits,
            strict=args.strict,
            allow_empty=args.allow_empty,
            report=not args.no_report,
            n_overlays=args.overlays,
        )
    except Exception as e:
        from sam3_angio.training.cli import find_user_error

        user_error = e if isinstance(e, EvaluationInputError) else find_user_error(e)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    print(format_summary(metrics))
    if out_dir is not None:
        print(f"wrote {os.path.join(out_dir, 'metrics.json')}" + ("" if args.no_report else f" and {os.path.join(out_dir, 'report.md')}"))
    return 0


def _run_model(args):
    """Predict with the model of ``args.config`` on ``args.split``; return (gt, predictions, out, logits).

    Contract with ``sam3_angio.training.predict``: ``predict_split(config, checkpoint, split, out_dir)``
    returns the predictions JSON path, or a dict ``{"pred_json", "gt_json"?, "cass_logits"?}``, or a
    ``(pred_json, gt_json)`` pair; without a ground-truth path, ``--gt`` or the module's
    ``split_annotations(config, split)`` names it.
    """
    try:
        from sam3_angio.training import predict as predict_mod
    except ImportError as e:
        raise EvaluationInputError(
            f"model mode needs sam3_angio.training.predict.predict_split, which cannot be imported here "
            f"({e}); evaluate a predictions file instead: --gt GT.json --pred PRED.json"
        ) from None
    stem = os.path.splitext(os.path.basename(args.config))[0]
    out_dir = args.out or os.path.join("outputs", "eval", f"{stem}_{args.split}")
    result = predict_mod.predict_split(args.config, args.checkpoint, args.split, out_dir,
                                       overrides=args.overrides)
    gt_json, logits = args.gt, None
    if isinstance(result, dict):
        pred_json, gt_json = result["pred_json"], gt_json or result.get("gt_json")
        logits = result.get("cass_logits")
    elif isinstance(result, (tuple, list)):
        pred_json, gt_json = result[0], gt_json or result[1]
    else:
        pred_json = result
    if gt_json is None and hasattr(predict_mod, "split_annotations"):
        gt_json = predict_mod.split_annotations(args.config, args.split, args.overrides)
    if args.images is None and gt_json:
        images = os.path.join(os.path.dirname(os.fspath(gt_json)), "images")
        args.images = images if os.path.isdir(images) else None
    if gt_json is None:
        raise EvaluationInputError(
            f"predictions written to {pred_json}, but the split's ground truth is unknown: pass --gt "
            f"<data>/{args.split}/annotations.json"
        )
    return gt_json, os.fspath(pred_json), out_dir, logits
