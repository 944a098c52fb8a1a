"""Command line of ``tools/eval.py``: evaluate a predictions file, or a checkpoint on a data split.

Two modes: ``--gt GT.json --pred PRED.json`` (a COCO results file from any model) and
``--checkpoint CKPT [-c CONFIG] [--split val]`` (runs the trained model through the inference
``Predictor`` - the one ``tools/predict.py`` uses - and evaluates its predictions with the same code).
The output folder is written atomically; an existing one is refused unless ``--overwrite``, and model
mode checks it and the split's ground truth before the model is built.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Dict, List, Optional

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
    out.add_argument("--out", help="output folder for metrics.json, report.md, pictures (model mode default: "
                     "outputs/eval/<config>_<split>); an existing non-empty one is refused unless --overwrite")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output folder (the old one "
                     "is kept until the new one is complete)")
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
        if model_mode:
            gt, pred, out_dir, model_info = _run_model(args)
        else:
            gt, pred, out_dir, model_info = args.gt, args.pred, args.out, None
            if out_dir:
                _check_out(out_dir, args, {"--gt": args.gt, "--pred": args.pred})
        from .keys import format_summary

        metrics = _evaluate(args, gt, pred, out_dir, model_info)
        print(format_summary(metrics))
        if out_dir is not None:
            print(f"wrote {os.path.join(out_dir, 'metrics.json')}"
                  + ("" if args.no_report else f" and {os.path.join(out_dir, 'report.md')}"))
        return 0

    return run_cli(run)


def _check_out(out_dir: str, args: argparse.Namespace, inputs: Dict[str, Optional[str]]) -> None:
    """Before anything slow: ``out_dir`` can be made, and is missing or empty unless --overwrite (the
    rule of tools/predict.py and tools/qca.py). --overwrite replaces the whole folder, so one that holds
    an input of this call (or the current folder) is refused: that input would be deleted."""
    from sam3_angio.data.atomic import check_free_output

    check_free_output(out_dir, args.overwrite)
    if not (args.overwrite and os.path.exists(out_dir)):
        return
    out = os.path.realpath(out_dir)
    keep = {**inputs, "--images": args.images, "--cass-logits": args.cass_logits, "the current folder": os.getcwd()}
    for what, path in keep.items():
        if path and (os.path.realpath(path) + os.sep).startswith(out + os.sep):
            raise EvaluationInputError(f"--out '{out_dir}' holds {what} '{path}', and --overwrite replaces the whole "
                                       f"folder, which would delete it; choose another --out")


def _evaluate(args: argparse.Namespace, gt, pred, out_dir: Optional[str], model_info: Optional[dict]) -> dict:
    """Score ``pred``; with ``out_dir``, every file is written into a temporary sibling that replaces
    ``out_dir`` once complete (an error or Ctrl-C leaves the old folder as it was). Model mode also
    writes the predictions it scored, ``predictions.json``."""
    from .evaluate import evaluate_files

    def score(folder):
        return evaluate_files(
            gt,
            pred,
            folder,
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

    if out_dir is None:
        return score(None)
    from sam3_angio.data.atomic import atomic_output_dir

    with atomic_output_dir(out_dir, overwrite=args.overwrite) as tmp:
        if model_info is not None:
            with open(tmp / "predictions.json", "w", encoding="utf-8") as f:
                json.dump(pred, f)
        return score(tmp)


def _run_model(args):
    """Predict ``args.split`` with the run's model; return (ground truth, predictions, out folder, model
    info). The ground truth and the output folder are checked before the model is built."""
    from sam3_angio.inference import Predictor
    from sam3_angio.inference.split import predict_split, split_paths

    from .ground_truth import GroundTruth

    keep = {"--checkpoint": args.checkpoint, "-c": args.config, "--gt": args.gt}
    if args.out:  # before the checkpoint is read
        _check_out(args.out, args, keep)
    split = {}

    def check(cfg) -> None:
        gt_json, images = split_paths(cfg, args.split)
        gt_json = args.gt or gt_json
        for path, kind in ((gt_json, "annotations"), (images, "images folder")):
            if not os.path.exists(path):
                raise EvaluationInputError(f"split {args.split!r}: {kind} not found at {path} (convert the data "
                                           f"first, or pass overrides such as paths.data_root=...)")
        gt = GroundTruth(gt_json)  # readable COCO, each record checked
        stem = os.path.splitext(os.path.basename(args.config or str(cfg.data.task)))[0]
        out_dir = args.out or os.path.join("outputs", "eval", f"{stem}_{args.split}")
        _check_out(out_dir, args, {**keep, "the split's annotations": gt_json, "the split's images": images})
        split.update(gt_json=gt_json, images=images, gt=gt, out_dir=out_dir)

    predictor = Predictor.from_checkpoint(args.checkpoint, config=args.config, overrides=args.overrides,
                                          naming=args.naming, before_build=check)
    print(banner(predictor.info.model))
    preds = predict_split(predictor, split["gt_json"], split["images"])
    if args.images is None:
        args.images = split["images"]
    return split["gt"], preds, split["out_dir"], predictor.info.to_dict()
