"""Evaluation: COCO AP (bbox, segm, per category), full-tree Dice/IoU, the ARCADE challenge F1,
end-to-end naming of CASS segments, and the trainer's validation meter.

Entry points: ``evaluate_files(gt_json, pred_json, out_dir=...)`` (also behind ``tools/eval.py``) and
``AngioValMeter`` for the trainer's ``meters:`` config. Metric keys are flat and dotted and have one
owner, ``keys.py`` (``segm.AP``, ``per_class.<name>.segm.AP``, ``cass.naming_top1``, ...);
docs/evaluation.md lists them.
"""

from .arcade_f1 import arcade_f1_segmentation, arcade_f1_stenosis, dice_f1
from .cass_metrics import CassEvaluator, classification_metrics, load_cass_logits
from .coco import CocoEvaluator, summarize_stat
from .errors import EvaluationInputError
from .evaluate import EvaluationResult, evaluate_files, evaluate_predictions
from .evaluator import DatasetEvaluator, DatasetEvaluators, run_evaluator
from .ground_truth import GroundTruth
from .keys import format_summary, nested, scalar_metrics, tensorboard_metrics
from .mask_metrics import MaskMetricsEvaluator
from .naming_metrics import NamingEvaluator
from .predictions import IGNORE_REASONS, PredictionSet, load_predictions
from .meter import AngioValMeter  # noqa: E402  (registers with EVALUATORS)

__all__ = [
    "AngioValMeter",
    "CassEvaluator",
    "CocoEvaluator",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "EvaluationInputError",
    "EvaluationResult",
    "GroundTruth",
    "IGNORE_REASONS",
    "MaskMetricsEvaluator",
    "NamingEvaluator",
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
    "tensorboard_metrics",
]
