"""The validation meter inside SAM3's trainer: named predictions in memory, then the evaluator.

``AngioValMeter`` is a SAM3-trainer meter (``update`` per validation batch, ``compute_synced`` at the
end). Each batch's outputs go through ``sam3_angio.inference.predict_instances`` - the postprocessing
``tools/predict.py`` and ``tools/eval.py`` use - and the instances are kept in memory (gathered across
ranks at the end); ``evaluate_predictions`` scores them with the code ``tools/eval.py`` runs, so the
numbers cannot drift apart. The CASS head's names of the ground-truth regions give
``cass_head.top1_gt_regions``; a regression head's estimates on the ground-truth regions that carry
measured values give ``qca_head.mae_stenosis_pct`` / ``mae_mld_mm`` / ``mae_reference_diameter_mm`` and
``qca_head.n_regions``. ``metrics.json``, ``metrics_history.jsonl`` and the predictions (for the
record: nothing reads them back) go to ``out_dir``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.distributed as dist

from sam3_angio.data.vessel_groups import as_groups, filter_coco
from sam3_angio.inference import predict_instances
from sam3_angio.inference.naming import check_rule
from sam3_angio.registry import EVALUATORS

from .cass_metrics import classification_metrics
from .coco import IOU_TYPES
from .evaluate import evaluate_predictions
from .ground_truth import GroundTruth, read_json
from .keys import format_summary, tensorboard_metrics
from .predictions import load_predictions

log = logging.getLogger(__name__)


def _gather(obj: Any) -> List[Any]:
    """``obj`` of every rank (a list of one without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def _is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@EVALUATORS.register()
class AngioValMeter:
    """Validation meter: bbox/segm AP overall and per class, Dice, ARCADE F1, end-to-end CASS naming and
    the CASS head on ground-truth regions, from named instances held in memory.

    Args:
        gt_path: COCO ground truth of the validation split (its image ids are the instances' ids).
        out_dir: where metrics.json, metrics_history.jsonl and predictions.json go.
        naming: ``fused`` | ``head`` | ``query`` (``sam3_angio/inference/naming.py``).
        max_dets: instances kept per image (COCO: 100).
        iou_types, score_thr, arcade_task: as in ``evaluate_files``.
        tb_per_class: per-class AP in what goes to TensorBoard (always in metrics.json).
        vessel_group, vessel_groups: ``data.vessel_group``: the ground truth restricted to that group's
            annotations and frames, as the validation loader is (``sam3_angio/data/vessel_groups.py``).
    """

    def __init__(self, gt_path: str, out_dir: str, naming: str = "fused", max_dets: int = 100,
                 iou_types: Sequence[str] = IOU_TYPES, score_thr: float = 0.5, arcade_task: str = "auto",
                 tb_per_class: bool = True, vessel_group: Optional[str] = None,
                 vessel_groups: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        self.gt_path = gt_path
        self.vessel_group = vessel_group or None
        self.vessel_groups = as_groups(vessel_groups)
        self.out_dir = out_dir
        self.naming = check_rule(naming)
        self.max_dets = int(max_dets)
        self.iou_types = tuple(iou_types)
        self.score_thr = float(score_thr)
        self.arcade_task = arcade_task
        self.tb_per_class = tb_per_class
        self._gt: Optional[GroundTruth] = None
        self.last_metrics: Dict[str, Any] = {}
        self.reset()

    @property
    def gt(self) -> GroundTruth:
        if self._gt is None:  # read once, reused every validation
            if self.vessel_group:
                data = filter_coco(read_json(self.gt_path, "ground-truth"), self.vessel_group, self.vessel_groups,
                                   str(self.gt_path))
                self._gt = GroundTruth(data)
            else:
                self._gt = GroundTruth(self.gt_path)
        return self._gt

    def reset(self) -> None:
        self.instances: List[dict] = []
        self.head_true: List[int] = []
        self.head_pred: List[int] = []
        self.head_class_ids: Optional[List[int]] = None
        self.qca_pairs: List[List[float]] = []  # [pred x3, target x3] in % and mm, a row per region

    @torch.no_grad()
    def update(self, find_stages, find_metadatas=None, model=None, batch=None, **kwargs) -> None:
        stages = find_stages.output if hasattr(find_stages, "output") else find_stages
        last = stages[-1][-1]
        model = getattr(model, "module", model)  # DDP
        names = self.gt.cat_names
        by_image = predict_instances(last, batch.find_inputs[0], find_metadatas[0], names, model=model,
                                     rule=self.naming, max_dets=self.max_dets)
        for records in by_image.values():
            self.instances += records
        if "cass_logits" in last and model is not None and hasattr(model, "class_ids"):
            self.head_class_ids = list(model.class_ids)
            targets = last["cass_targets"].detach().cpu()
            pred = last["cass_logits"].detach().argmax(1).cpu()
            keep = targets >= 0
            self.head_true += [self.head_class_ids[i] for i in targets[keep].tolist()]
            self.head_pred += [self.head_class_ids[i] for i in pred[keep].tolist()]
        head = getattr(model, "regression_head", None)
        if "qca_pred" in last and head is not None:
            pred = head.denormalise(last["qca_pred"].detach().float()).cpu()
            target = head.denormalise(last["qca_targets"].detach().float()).cpu()
            self.qca_pairs += torch.cat([pred, target], dim=1).tolist()

    def compute_synced(self) -> Dict[str, float]:
        parts = _gather((self.instances, self.head_true, self.head_pred, self.head_class_ids, self.qca_pairs))
        if not _is_main():
            return {}
        instances = [r for p in parts for r in p[0]]
        head_true = [t for p in parts for t in p[1]]
        head_pred = [t for p in parts for t in p[2]]
        head_ids = next((p[3] for p in parts if p[3]), None)
        qca_pairs = [t for p in parts for t in p[4]]
        metrics = self.evaluate(instances, head_true, head_pred, head_ids, qca_pairs)
        return tensorboard_metrics(metrics, per_class=self.tb_per_class)

    def compute(self) -> Dict[str, float]:
        """Nothing: SAM3's ProgressMeter calls ``compute()`` at every ``log_freq`` validation batch to print
        the meters so far. Scoring the partial predictions there against the whole ground truth gave wrong
        interim numbers, rewrote metrics.json and added a line to metrics_history.jsonl each time, and cost
        a COCO evaluation per logged batch (quadratic in the validation set). The trainer's end-of-
        validation call is :meth:`compute_synced`."""
        return {}

    def evaluate(self, instances: List[dict], head_true: Sequence[int] = (), head_pred: Sequence[int] = (),
                 head_class_ids: Optional[Sequence[int]] = None,
                 qca_pairs: Sequence[Sequence[float]] = ()) -> Dict[str, Any]:
        """Score ``instances`` against the ground truth; write metrics.json, the history and predictions."""
        preds = load_predictions(instances, self.gt, allow_empty=True)
        result = evaluate_predictions(self.gt, preds, self.iou_types, score_thr=self.score_thr,
                                      arcade_task=self.arcade_task)
        metrics = result.metrics
        if head_true and head_class_ids:
            m = classification_metrics(list(head_true), list(head_pred), list(head_class_ids))
            metrics.update({"cass_head.top1_gt_regions": m["top1"],
                            "cass_head.balanced_accuracy_gt_regions": m["balanced_accuracy"],
                            "cass_head.n_segments": m["n_images"]})
        if qca_pairs:
            metrics.update(qca_head_metrics(qca_pairs))
        for w in metrics.get("warnings", []):
            log.warning("%s", w)
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
        with open(os.path.join(self.out_dir, "metrics_history.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(metrics, sort_keys=True) + "\n")
        with open(os.path.join(self.out_dir, "predictions.json"), "w", encoding="utf-8") as f:
            json.dump(instances, f)
        self.last_metrics = metrics
        logging.info("Validation (metrics.json in %s):\n%s", self.out_dir, format_summary(metrics))
        return metrics


def qca_head_metrics(pairs: Sequence[Sequence[float]]) -> Dict[str, Any]:
    """Mean |estimate - measured| of each value over the regions that carry it (rows [pred x3, target
    x3], NaN = not measured); ``qca_head.n_regions``: regions with a measured stenosis %."""
    import math

    out: Dict[str, Any] = {}
    names = ("stenosis_pct", "mld_mm", "reference_diameter_mm")
    for j, name in enumerate(names):
        errs = [abs(r[j] - r[3 + j]) for r in pairs if math.isfinite(r[3 + j])]
        out[f"qca_head.mae_{name}"] = sum(errs) / len(errs) if errs else None
    out["qca_head.n_regions"] = sum(1 for r in pairs if math.isfinite(r[3]))
    return out
