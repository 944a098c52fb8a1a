"""Evaluation: COCO AP (bbox, segm, per category), full-tree Dice/IoU, the ARCADE challenge F1,
end-to-end naming of CASS segments, and the trainer's validation meter.

Entry points: ``evaluate_files(gt_json, pred_json, out_dir=...)`` (also behind ``tools/eval.py``) and
``AngioValMeter`` for the trainer's ``meters:`` config. Metric keys are flat and dotted and have one
owner, ``keys.py`` (``segm.AP``, ``per_class.<name>.segm.AP``, ``cass.naming_top1``, ...);
docs/evaluation.md lists them.

The names below load on first use (PEP 562): ``import sam3_angio.evaluation.keys`` - what
``tools/train.py`` needs to start - stays free of torch, sam3 and pycocotools, so an error in a
command line is reported in a second, not after four seconds of imports.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the submodule that defines it
_EXPORTS = {
    "arcade_f1_segmentation": "arcade_f1", "arcade_f1_stenosis": "arcade_f1", "dice_f1": "arcade_f1",
    "CassEvaluator": "cass_metrics", "classification_metrics": "cass_metrics", "load_cass_logits": "cass_metrics",
    "CocoEvaluator": "coco", "summarize_stat": "coco",
    "EvaluationInputError": "errors",
    "EvaluationResult": "evaluate", "evaluate_files": "evaluate", "evaluate_predictions": "evaluate",
    "DatasetEvaluator": "evaluator", "DatasetEvaluators": "evaluator", "run_evaluator": "evaluator",
    "GroundTruth": "ground_truth",
    "format_summary": "keys", "nested": "keys", "scalar_metrics": "keys", "tensorboard_metrics": "keys",
    "MaskMetricsEvaluator": "mask_metrics",
    "NamingEvaluator": "naming_metrics",
    "IGNORE_REASONS": "predictions", "PredictionSet": "predictions", "load_predictions": "predictions",
    "AngioValMeter": "meter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
