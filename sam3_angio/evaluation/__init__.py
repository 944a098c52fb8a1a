"""Evaluation: COCO AP (bbox, segm, per category), full-tree Dice/IoU, the ARCADE challenge F1,
CASS classification, and a SAM3-trainer meter that reports them during validation.

Entry points: ``evaluate_files(gt_json, pred_json, out_dir=...)`` (also behind ``tools/eval.py``) and
``AngioCocoMeter`` / ``AngioCocoEvaluator`` for the trainer's ``meters:`` config. Metric keys are flat
and dotted (``segm.AP``, ``per_class.<name>.segm.AP``, ``arcade_f1``); see docs/evaluation.md.
"""

from .arcade_f1 import arcade_f1_segmentation, arcade_f1_stenosis, dice_f1
from .cass_metrics import CassEvaluator, classification_metrics, load_cass_logits
from .coco import CocoEvaluator, summarize_stat
from .errors import EvaluationInputError
from .evaluate import EvaluationResult, evaluate_files, evaluate_predictions
from .evaluator import DatasetEvaluator, DatasetEvaluators, run_evaluator
from .ground_truth import GroundTruth
from .keys import format_summary, nested, scalar_metrics
from .mask_metrics import MaskMetricsEvaluator
from .predictions import IGNORE_REASONS, PredictionSet, load_predictions
from .meter import AngioCocoEvaluator, AngioCocoMeter  # noqa: E402  (registers with EVALUATORS)
from .cass_head_meter import CassHeadMeter  # noqa: E402

__all__ = [
    "AngioCocoEvaluator",
    "AngioCocoMeter",
    "CassEvaluator",
    "CocoEvaluator",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "EvaluationInputError",
    "EvaluationResult",
    "GroundTruth",
    "IGNORE_REASONS",
    "MaskMetricsEvaluator",
    "PredictionSet",
    "arcade_f1_segmentation",
    "arcade_f1_stenosis",
    "classification_metrics",
    "dice_f1",
    "evaluate_files",
    "evaluate_predictions",
    "format_summary",
    "load_cass_logits",
    "load_predictions",
    "nested",
    "run_evaluator",
    "scalar_metrics",
    "summarize_stat",
]
