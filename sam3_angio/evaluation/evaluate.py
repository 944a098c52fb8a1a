"""``evaluate_files``: one call from a COCO ground truth and a predictions file to every metric.

Metrics come back as one flat dict with stable dotted keys (``segm.AP``, ``per_class.<name>.segm.AP``,
``arcade_f1``, ``cass.top1``, ``ignored.<reason>``, ...; docs/evaluation.md lists them) and, with
``out_dir``, are written to ``out_dir/metrics.json`` beside ``report.md``, its pictures and ``per_image.csv``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .cass_metrics import CassEvaluator, labelled_fraction, load_cass_logits
from .coco import IOU_TYPES, CocoEvaluator
from .keys import COCO_STATS as STAT_NAMES, HEAD_KEYS, IMAGE_CASS_KEYS, NAMING_KEYS, PER_CLASS_STATS, PIXEL_KEYS
from .errors import EvaluationInputError
from .evaluator import DatasetEvaluator, DatasetEvaluators, run_evaluator
from .ground_truth import GroundTruth
from .mask_metrics import MaskMetricsEvaluator
from .naming_metrics import NamingEvaluator
from .predictions import IGNORE_REASONS, PredictionSet, load_predictions

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class EvaluationResult:
    """Metrics plus what the report draws from (PR curves, per-image rows, inputs)."""

    metrics: Dict[str, Any]
    gt: GroundTruth
    preds: PredictionSet
    curves: Dict[str, dict] = field(default_factory=dict)
    per_image: List[dict] = field(default_factory=list)


def evaluate_predictions(
    gt: GroundTruth,
    preds: PredictionSet,
    iou_types: Sequence[str] = IOU_TYPES,
    *,
    score_thr: float = 0.5,
    arcade_task: str = "auto",
    cass: Union[str, bool] = "auto",
    cass_label_key: Optional[str] = None,
    cass_logits: Optional[Union[PathLike, Mapping[str, Any]]] = None,
) -> EvaluationResult:
    """Run every applicable evaluator over ``gt``'s images; see ``evaluate_files`` for the arguments."""
    t0 = time.perf_counter()
    iou_types = tuple(iou_types)
    for t in iou_types:
        if t not in IOU_TYPES:
            raise EvaluationInputError(f"unknown iou type {t!r}: expected some of {IOU_TYPES}")
    warnings = list(preds.warnings)
    empty = not preds.records
    evaluated = []
    if gt.n_annotations == 0:
        warnings.append("the ground truth holds no annotations: there is nothing to find, so AP, AR and the "
                        "pixel metrics are undefined (null); every prediction is a false positive")
    for t in iou_types:
        if gt.n_annotations == 0:
            continue
        if t == "segm" and not gt.has_segm:
            warnings.append("the ground truth has annotations without 'segmentation': segm metrics not computed (null)")
        elif not empty and not preds.has(t):
            what = "boxes ('bbox')" if t == "bbox" else "masks ('segmentation')"
            warnings.append(f"the predictions carry no usable {what}: {t} metrics not computed (null)")
        else:
            evaluated.append(t)
    masks = "segm" in evaluated

    evaluators: List[DatasetEvaluator] = []
    coco_ev = CocoEvaluator(gt, evaluated) if evaluated else None
    if coco_ev:
        evaluators.append(coco_ev)
    mask_ev = MaskMetricsEvaluator(gt, score_thr, arcade_task) if masks else None
    if mask_ev:
        evaluators.append(mask_ev)
    n_classes = len({a["category_id"] for a in gt.coco.dataset["annotations"]})
    naming_ev = NamingEvaluator(gt, score_thr) if masks and n_classes >= 2 else None
    if naming_ev:
        evaluators.append(naming_ev)

    head_ids, logits = (None, None)
    if cass_logits is not None:
        head_ids, logits = load_cass_logits(cass_logits, gt)
    cass_reason = None
    if cass is True or cass_logits is not None:
        use_cass = True
    elif cass is False:
        use_cass, cass_reason = False, "turned off"
    else:
        n_lab, n_all = labelled_fraction(gt, cass_label_key)
        use_cass = n_all > 0 and n_lab == n_all and n_classes >= 2
        if n_classes < 2:
            cass_reason = f"the ground truth has {n_classes} annotated category: nothing to classify"
        elif not use_cass:
            cass_reason = (
                f"{n_all - n_lab} of {n_all} annotated images show several segments, so a frame has no "
                "single class: see cass.naming_* for naming each segment (cass=True scores the others)"
            )
    cass_ev = CassEvaluator(gt, cass_label_key, head_ids) if use_cass else None
    if cass_ev:
        evaluators.append(cass_ev)

    metrics: Dict[str, Any] = run_evaluator(DatasetEvaluators(evaluators), gt.image_ids, preds.by_image(), logits)

    # Stable keys: what was asked for but could not be computed is present, as null.
    for t in iou_types:
        if t not in evaluated:
            for name in STAT_NAMES:
                metrics[f"{t}.{name}"] = None
            metrics[f"{t}.n_pred"] = 0
            for cid in gt.cat_ids:
                for name in PER_CLASS_STATS:
                    metrics[f"per_class.{gt.cat_keys[cid]}.{t}.{name}"] = None
                metrics[f"per_class.{gt.cat_keys[cid]}.{t}.n_pred"] = 0
    if not coco_ev:
        for cid in gt.cat_ids:
            metrics[f"per_class.{gt.cat_keys[cid]}.category_id"] = cid
            metrics[f"per_class.{gt.cat_keys[cid]}.name"] = gt.cat_names[cid]
            metrics[f"per_class.{gt.cat_keys[cid]}.n_gt"] = sum(
                1 for a in gt.coco.dataset["annotations"] if a["category_id"] == cid and not a.get("iscrowd", 0)
            )
    if not naming_ev:
        for k in NAMING_KEYS:
            metrics[k] = None
        metrics["cass.naming_skipped"] = (
            "no masks to match" if not masks else f"the ground truth has {n_classes} annotated category: nothing to name")
    else:
        metrics["cass.naming_skipped"] = None
    # The head-on-true-regions keys come from validation (AngioValMeter); offline they are null.
    for k in HEAD_KEYS:
        metrics.setdefault(k, None)
    if not mask_ev:
        for k in PIXEL_KEYS:
            metrics[k] = None
        for cid in gt.cat_ids:
            metrics[f"per_class.{gt.cat_keys[cid]}.dice_f1"] = None
    if cass_ev:
        metrics["cass.skipped"] = None
    else:
        for k in IMAGE_CASS_KEYS + ("cass.n_images", "cass.source"):
            metrics[k] = None
        metrics["cass.skipped"] = cass_reason
        if cass_reason and cass is not False:
            log.info("CASS classification metrics skipped: %s", cass_reason)

    for reason in IGNORE_REASONS:
        metrics[f"ignored.{reason}"] = int(preds.ignored.get(reason, 0))
    metrics.update(
        {
            "meta.schema_version": SCHEMA_VERSION,
            "meta.gt_json": gt.path,
            "meta.pred_json": preds.path,
            "meta.pred_format": preds.source_format,
            "meta.iou_types_requested": list(iou_types),
            "meta.iou_types_evaluated": evaluated,
            "meta.n_images": len(gt.image_ids),
            "meta.n_gt": gt.n_annotations,
            "meta.n_categories": len(gt.cat_ids),
            "meta.n_pred_input": preds.n_input,
            "meta.n_pred_used": len(preds.records),
            "meta.n_pred_remapped_by_file_name": preds.n_remapped_file_name,
            "meta.seconds": round(time.perf_counter() - t0, 3),
            "warnings": warnings,
        }
    )
    return EvaluationResult(
        metrics=dict(sorted(metrics.items())),
        gt=gt,
        preds=preds,
        curves=coco_ev.curves if coco_ev else {},
        per_image=mask_ev.rows if mask_ev else [],
    )


def evaluate_files(
    gt_json: Union[PathLike, Mapping[str, Any], GroundTruth],
    pred_json: Union[PathLike, Sequence[dict], Mapping[str, Any]],
    out_dir: Optional[PathLike] = None,
    iou_types: Sequence[str] = IOU_TYPES,
    *,
    images_dir: Optional[PathLike] = None,
    score_thr: float = 0.5,
    arcade_task: str = "auto",
    cass: Union[str, bool] = "auto",
    cass_label_key: Optional[str] = None,
    cass_logits: Optional[Union[PathLike, Mapping[str, Any]]] = None,
    strict: bool = False,
    allow_empty: bool = False,
    report: bool = True,
    n_overlays: int = 4,
    model_info: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Evaluate a COCO results file (any model) against a COCO ground truth.

    Args:
        gt_json: COCO ground truth (path, dict or a ``GroundTruth``).
        pred_json: COCO results list (path or list; bbox and/or segmentation as RLE or polygons), or a
            COCO dataset whose annotations are the predictions (ARCADE submission format).
        out_dir: when given, writes ``metrics.json``, ``per_image.csv`` and (``report=True``)
            ``report.md`` with PR curves, the CASS confusion matrix and overlays (with ``images_dir``).
        iou_types: COCO AP for ``bbox`` and/or ``segm``.
        score_thr: predictions below it do not count for Dice/IoU/F1 (AP uses all scores).
        arcade_task: 'segmentation', 'stenosis' or 'auto' (stenosis when the only annotated category is
            named "stenosis").
        cass: CASS classification metrics: True, False, or 'auto' (when every annotated image has one
            class label). ``cass_label_key`` names the image field holding the label.
        cass_logits: a CASS head's logits, ``{"class_ids": [...], "predictions": [{"image_id", "logits"}]}``.
        strict: any ignored prediction is an error (default: counted, warned, stored).
        allow_empty: an empty prediction list is evaluated (AP 0, with a warning) instead of an error.
        model_info: what made the predictions (``Predictor.info``: task, model, checkpoint, naming), recorded
            as ``meta.model.*`` and named at the top of the report.

    Returns: the flat metrics dict (also in metrics.json). Raises ``EvaluationInputError`` for unusable
    input, with a message that says what to fix.
    """
    gt = gt_json if isinstance(gt_json, GroundTruth) else GroundTruth(gt_json)
    preds = load_predictions(pred_json, gt, strict=strict, allow_empty=allow_empty)
    res = evaluate_predictions(
        gt,
        preds,
        iou_types,
        score_thr=score_thr,
        arcade_task=arcade_task,
        cass=cass,
        cass_label_key=cass_label_key,
        cass_logits=cass_logits,
    )
    for key, value in (model_info or {}).items():
        if key != "categories":
            res.metrics[f"meta.model.{key}"] = value
    for w in res.metrics["warnings"]:
        log.warning("%s", w)
    if out_dir is not None:
        from .report import write_outputs

        write_outputs(res, out_dir, images_dir=images_dir, report=report, n_overlays=n_overlays)
    return res.metrics
