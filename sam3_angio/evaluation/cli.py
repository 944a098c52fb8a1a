"""Command line of ``tools/eval.py``: evaluate a predictions file, or a checkpoint on a data split.

Two modes: ``--gt GT.json --pred PRED.json`` (a COCO results file from any model) and
``--checkpoint CKPT [-c CONFIG] [--split val]`` (runs the trained model through the inference
``Predictor`` - the one ``tools/predict.py`` uses - and evaluates its predictions with the same code).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import List, Optional

from sam3_angio.errors import run_cli
from sam3_angio.model.builders import banner

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
    mod.add_argument("-c", "--config", help="the run's config (path or name); default: the config_resolved.yaml "
                     "tools/train.py saved beside the checkpoint")
    mod.add_argument("--checkpoint", help="checkpoint.pt to evaluate")
    mod.add_argument("--naming", choices=["fused", "head", "query"], default=None,
                     help="how predicted segments are named (default: the config's inference.naming)")
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
    # force: sam3 logs at import time, which leaves Python's default "LEVEL:module:message" handler behind
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", force=True)
    file_mode = args.gt is not None or args.pred is not None
    model_mode = args.config is not None or args.checkpoint is not None
    if file_mode and args.pred is None or (not model_mode and args.gt is None):
        parser.error("give --gt GT.json --pred PRED.json, or -c CONFIG --checkpoint CKPT")
    if model_mode and args.checkpoint is None:
        parser.error("model mode needs --checkpoint CKPT (and -c CONFIG unless the run folder holds its config)")
    if model_mode and args.pred is not None:
        parser.error("--pred and -c/--checkpoint are two different modes: use one")

    def run() -> int:
        model_info = None
        if model_mode:
            gt_json, pred_json, out_dir, model_info = _run_model(args)
        else:
            gt_json, pred_json, out_dir = args.gt, args.pred, args.out
            if out_dir:
                from sam3_angio.data.atomic import check_output_dir

                check_output_dir(out_dir)
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
            model_info=model_info,
        )
        print(format_summary(metrics))
        if out_dir is not None:
            print(f"wrote {os.path.join(out_dir, 'metrics.json')}"
                  + ("" if args.no_report else f" and {os.path.join(out_dir, 'report.md')}"))
        return 0

    return run_cli(run)


def _run_model(args):
    """Predict ``args.split`` with the run's model; return (gt json, predictions, out folder, model info)."""
    from sam3_angio.inference import Predictor
    from sam3_angio.inference.split import predict_split, split_paths

    predictor = Predictor.from_checkpoint(args.checkpoint, config=args.config, overrides=args.overrides,
                                          naming=args.naming)
    print(banner(predictor.info.model))
    gt_json, images = split_paths(predictor.cfg, args.split)
    if args.gt:
        gt_json = args.gt
    if not os.path.exists(gt_json):
        raise EvaluationInputError(f"split {args.split!r}: annotations not found at {gt_json} (convert the data "
                                   f"first, or pass overrides such as paths.data_root=...)")
    stem = os.path.splitext(os.path.basename(args.config or predictor.info.task))[0]
    out_dir = args.out or os.path.join("outputs", "eval", f"{stem}_{args.split}")
    from sam3_angio.data.atomic import check_output_dir

    check_output_dir(out_dir)
    preds = predict_split(predictor, gt_json, images)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "predictions.json"), "w", encoding="utf-8") as f:
        json.dump(preds, f)
    if args.images is None and os.path.isdir(images):
        args.images = images
    return gt_json, preds, out_dir, predictor.info.to_dict()
