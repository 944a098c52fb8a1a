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

from sam3_angio.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
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
})
