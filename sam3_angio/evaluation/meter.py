"""Validation metrics inside SAM3's trainer: a ``pred_file_evaluator`` and a ready-made meter.

``AngioCocoEvaluator`` subclasses sam3's ``CocoEvaluatorOfflineWithPredFileEvaluators``: given the
prediction file that sam3's ``PredictionDumper`` writes at the end of validation, it runs
``evaluate_files`` (the same code as ``tools/eval.py``, so the numbers match), logs bbox/segm AP and
per-class segm AP to the text log, writes ``metrics.json`` into the dump folder and returns the scalar
metrics, which the trainer logs to TensorBoard. ``AngioCocoMeter`` is a ``PredictionDumper`` with that
evaluator built in (one YAML block instead of two).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from typing import Any, Dict, Optional, Sequence

from sam3_angio.registry import EVALUATORS

with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    # sam3.eval.coco_eval_offline prints a notice about the optional TIDE package at import (unused
    # here), and importing sam3 warns about CUDA autocast on CPU machines.
    warnings.simplefilter("ignore")
    from sam3.eval.coco_eval_offline import CocoEvaluatorOfflineWithPredFileEvaluators
    from sam3.eval.coco_writer import PredictionDumper
    from sam3.train.utils.distributed import is_main_process

from .coco import IOU_TYPES
from .evaluate import evaluate_files
from .ground_truth import GroundTruth
from .keys import format_summary, scalar_metrics

log = logging.getLogger(__name__)

# What goes to TensorBoard: the headline numbers and per-class AP (everything is in metrics.json).
_TB_SUFFIXES = (".segm.AP", ".bbox.AP")
_TB_KEYS = tuple(f"{t}.{s}" for t in IOU_TYPES for s in ("AP", "AP50", "AP75", "AR100")) + (
    "dice",
    "iou",
    "arcade_f1",
    "dice_f1",
    "cass.top1",
    "cass.balanced_accuracy",
)


@EVALUATORS.register()
class AngioCocoEvaluator(CocoEvaluatorOfflineWithPredFileEvaluators):
    """sam3 pred_file_evaluator: bbox + segm AP, per-class AP, Dice, ARCADE F1, CASS accuracy.

    Args:
        gt_path: COCO ground truth of the validation split (image ids must be the ones the
            postprocessor writes: ``use_original_ids: true``).
        iou_types: COCO AP types to compute from the dump (a segm dump carries boxes too).
        out_dir: where metrics.json (and report.md if ``report``) go; default: the dump's folder.
        score_thr, arcade_task, cass, cass_label_key: as in ``evaluate_files``.
        report: also write report.md with pictures each validation (slower; off by default).
        tb_per_class: return per-class AP for TensorBoard (always in metrics.json and the text log).
    """

    def __init__(
        self,
        gt_path: str,
        iou_types: Sequence[str] = IOU_TYPES,
        out_dir: Optional[str] = None,
        score_thr: float = 0.5,
        arcade_task: str = "auto",
        cass: Any = "auto",
        cass_label_key: Optional[str] = None,
        report: bool = False,
        tb_per_class: bool = True,
        tide: bool = False,
        positive_split: bool = False,
    ) -> None:
        if positive_split:
            raise ValueError("AngioCocoEvaluator does not implement sam3's positive_split evaluation; use sam3's own evaluator for it")
        iou_types = tuple(iou_types)
        super().__init__(gt_path=gt_path, tide=False, iou_type=iou_types[-1], positive_split=False)
        self.iou_types = iou_types
        self.out_dir = out_dir
        self.score_thr = score_thr
        self.arcade_task = arcade_task
        self.cass = cass
        self.cass_label_key = cass_label_key
        self.report = report
        self.tb_per_class = tb_per_class
        self._gt: Optional[GroundTruth] = None
        self.last_metrics: Dict[str, Any] = {}

    def evaluate(self, dumped_file) -> Dict[str, float]:
        if not is_main_process():
            return {}
        dumped_file = os.fspath(dumped_file)
        out_dir = self.out_dir or os.path.dirname(dumped_file)
        if self._gt is None:  # loaded once, reused every validation epoch
            self._gt = GroundTruth(self.gt_path)
        metrics = evaluate_files(
            self._gt,
            dumped_file,
            out_dir,
            self.iou_types,
            score_thr=self.score_thr,
            arcade_task=self.arcade_task,
            cass=self.cass,
            cass_label_key=self.cass_label_key,
            allow_empty=True,  # a fresh model may predict nothing: warned and logged, not a crash mid-training
            report=self.report,
        )
        self.last_metrics = metrics
        with open(os.path.join(out_dir, "metrics_history.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics, sort_keys=True) + "\n")
        logging.info("Angio evaluation of %s (metrics.json in %s):\n%s", dumped_file, out_dir, format_summary(metrics))
        return self.tensorboard_dict(metrics)

    def tensorboard_dict(self, metrics: Dict[str, Any]) -> Dict[str, float]:
        """Finite scalars only (TensorBoard takes nothing else): headline metrics, per-class AP of the
        classes with ground truth, and counts of ignored predictions when there are any."""
        scal = scalar_metrics(metrics)
        out = {k: v for k, v in scal.items() if k in _TB_KEYS}
        if self.tb_per_class:
            out.update({k: v for k, v in scal.items() if k.startswith("per_class.") and k.endswith(_TB_SUFFIXES)})
        out.update({k: v for k, v in scal.items() if k.startswith("ignored.") and v > 0})
        return out


@EVALUATORS.register()
class AngioCocoMeter(PredictionDumper):
    """sam3 ``PredictionDumper`` with ``AngioCocoEvaluator`` built in: a complete validation meter.

    Args:
        dump_dir: folder for the merged predictions (``coco_predictions_segm.json``) and metrics.json.
        postprocessor: sam3 ``PostProcessImage`` with ``iou_type: segm`` (for masks),
            ``use_original_ids: true``, ``use_original_sizes_box/mask: true`` and
            ``convert_mask_to_rle: false``.
        gt_path: COCO ground truth of the validation split.
        maxdets: detections kept per image (COCO: 100).
        iou_types, score_thr, arcade_task, cass, cass_label_key, report, tb_per_class: see
            ``AngioCocoEvaluator``.
        gather_pred_via_filesys: as in PredictionDumper (multi-rank gathering through the filesystem).
    """

    def __init__(
        self,
        dump_dir: str,
        postprocessor,
        gt_path: str,
        maxdets: int = 100,
        iou_types: Sequence[str] = IOU_TYPES,
        score_thr: float = 0.5,
        arcade_task: str = "auto",
        cass: Any = "auto",
        cass_label_key: Optional[str] = None,
        report: bool = False,
        tb_per_class: bool = True,
        gather_pred_via_filesys: bool = False,
    ) -> None:
        iou_types = tuple(iou_types)
        dump_type = "segm" if "segm" in iou_types else "bbox"
        _check_postprocessor(postprocessor, dump_type)
        self.evaluator = AngioCocoEvaluator(
            gt_path,
            iou_types,
            out_dir=dump_dir,
            score_thr=score_thr,
            arcade_task=arcade_task,
            cass=cass,
            cass_label_key=cass_label_key,
            report=report,
            tb_per_class=tb_per_class,
        )
        super().__init__(
            dump_dir=dump_dir,
            postprocessor=postprocessor,
            maxdets=maxdets,
            iou_type=dump_type,
            gather_pred_via_filesys=gather_pred_via_filesys,
            merge_predictions=True,
            pred_file_evaluators=[self.evaluator],
        )


def _check_postprocessor(pp, dump_type: str) -> None:
    """Catch the postprocessor settings that make validation fail late or score nonsense."""
    pp_type = getattr(pp, "iou_type", None)
    if dump_type == "segm" and pp_type is not None and pp_type != "segm":
        raise ValueError(
            f"AngioCocoMeter evaluates masks but its postprocessor has iou_type={pp_type!r}: set the "
            "postprocessor's iou_type: segm (with bbox it returns no 'masks' and PredictionDumper fails "
            "with KeyError: 'masks'), or pass iou_types: [bbox] to the meter"
        )
    if getattr(pp, "use_original_ids", True) is False:
        log.warning(
            "AngioCocoMeter: postprocessor use_original_ids is false, so predictions carry the loader's "
            "coco_image_id; they match the ground truth only if those equal the file's image ids"
        )
    for attr in ("use_original_sizes_box", "use_original_sizes_mask"):
        if getattr(pp, attr, True) is False:
            log.warning(
                "AngioCocoMeter: postprocessor %s is false: boxes/masks come out in normalised units "
                "(masks 1x1) and will not match the ground truth; set it to true",
                attr,
            )
