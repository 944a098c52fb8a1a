"""CASS segment classification metrics: top-1 accuracy, balanced accuracy, confusion matrix.

Two sources per image: a CASS head's logits (``cass_logits``, K values over ``class_ids``), and the
detector's best-scoring category (the category of the image's highest-scoring prediction). The label
of an image comes from its record (``cass_id`` / ``cass_segment`` / ``category_id``, or a given key) or,
when all its annotations share one category, from that category.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import EvaluationInputError
from .evaluator import DatasetEvaluator, Metrics
from .ground_truth import GroundTruth, read_json


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[Optional[int]], class_ids: Sequence[int]
) -> Dict[str, Any]:
    """Top-1, balanced accuracy (mean recall over classes present in ``y_true``) and the confusion matrix
    (rows = true, columns = predicted, in ``class_ids`` order), computed by scikit-learn
    (``accuracy_score``, ``balanced_accuracy_score``, ``confusion_matrix(labels=class_ids)``,
    ``recall_score``).

    A missing prediction (None) or one outside ``class_ids`` counts as wrong and appears in no column
    (``n_no_prediction`` / ``n_outside_classes``): both become one label outside ``class_ids``, which
    no true label equals (wrong for top-1 and for its class's recall) and which ``labels=class_ids``
    leaves out of the confusion matrix.
    """
    # scikit-learn takes seconds to import; pay it only when metrics are computed
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

    classes = list(class_ids)
    known = set(classes)
    for t in y_true:
        if t not in known:
            raise EvaluationInputError(f"label {t!r} is not one of the classes {classes}")
    n_none = sum(p is None for p in y_pred)
    n_outside = sum(p is not None and p not in known for p in y_pred)
    wrong = min(classes, default=0) - 1  # a label that is none of the classes
    pred = [p if p is not None and p in known else wrong for p in y_pred]
    n = len(y_true)
    if n == 0:
        k = len(classes)
        return {"top1": None, "balanced_accuracy": None, "n_images": 0, "n_no_prediction": n_none,
                "n_outside_classes": n_outside, "confusion": [[0] * k for _ in range(k)],
                "per_class_recall": [None] * k}
    true = list(y_true)
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": the stand-in label, on purpose
        warnings.simplefilter("ignore", UserWarning)
        balanced = balanced_accuracy_score(true, pred)
    recall = recall_score(true, pred, labels=classes, average=None, zero_division=np.nan)
    return {
        "top1": float(accuracy_score(true, pred)),
        "balanced_accuracy": float(balanced),
        "n_images": n,
        "n_no_prediction": n_none,
        "n_outside_classes": n_outside,
        "confusion": confusion_matrix(true, pred, labels=classes).tolist(),
        "per_class_recall": [None if np.isnan(r) else float(r) for r in recall],
    }


def load_cass_logits(
    source: Union[str, "os.PathLike[str]", Mapping[str, Any]], gt: GroundTruth
) -> Tuple[List[int], Dict[int, List[float]]]:
    """Read ``{"class_ids": [K ids], "predictions": [{"image_id": id, "logits": [K floats]}, ...]}``.

    Returns ``(class_ids, {image_id: logits})``. Unknown ids, wrong lengths and non-finite values are
    errors: a CASS head that writes them is broken, not partly right.
    """
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "cass logits"
    data = read_json(source, "CASS logits") if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(data, Mapping) or "class_ids" not in data or "predictions" not in data:
        raise EvaluationInputError(
            f"{where}: expected {{'class_ids': [...], 'predictions': [{{'image_id', 'logits'}}, ...]}}"
        )
    class_ids = list(data["class_ids"])
    bad = [c for c in class_ids if c not in gt.cat_names]
    if bad:
        raise EvaluationInputError(f"{where}: class_ids {bad} are not ground-truth categories {gt.cat_ids}")
    out: Dict[int, List[float]] = {}
    for i, p in enumerate(data["predictions"]):
        img = p.get("image_id") if isinstance(p, Mapping) else None
        if img not in gt.images:
            raise EvaluationInputError(f"{where}: predictions[{i}] has image_id {img!r}, not in the ground truth")
        logits = p.get("logits")
        if not isinstance(logits, list) or len(logits) != len(class_ids):
            raise EvaluationInputError(
                f"{where}: predictions[{i}] (image {img}) needs {len(class_ids)} logits, found "
                f"{len(logits) if isinstance(logits, list) else type(logits).__name__}"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in logits):
            raise EvaluationInputError(f"{where}: predictions[{i}] (image {img}) has non-finite or non-numeric logits")
        if img in out:
            raise EvaluationInputError(f"{where}: image {img} has logits twice")
        out[img] = [float(v) for v in logits]
    return class_ids, out


def labelled_fraction(gt: GroundTruth, label_key: Optional[str] = None) -> Tuple[int, int]:
    """(images with a label, images with annotations or a label field)."""
    n_lab = n_all = 0
    for i in gt.image_ids:
        lab = gt.image_label(i, label_key)
        if lab is not None or gt.annotations(i):
            n_all += 1
            n_lab += int(lab is not None)
    return n_lab, n_all


class CassEvaluator(DatasetEvaluator):
    """``cass.detector.*`` always, ``cass.head.*`` when logits arrive, and ``cass.*`` = the head's numbers
    when there are logits, else the detector's (``cass.source`` says which)."""

    def __init__(
        self, gt: GroundTruth, label_key: Optional[str] = None, head_class_ids: Optional[Sequence[int]] = None
    ) -> None:
        self.gt = gt
        self.label_key = label_key
        self.class_ids = list(gt.cat_ids)
        self.head_class_ids = list(head_class_ids) if head_class_ids is not None else None
        self.reset()

    def reset(self) -> None:
        self.y_true: List[int] = []
        self.y_det: List[Optional[int]] = []
        self.head_true: List[int] = []
        self.y_head: List[int] = []
        self.n_unlabelled = 0
        self.image_ids: List[int] = []

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            label = self.gt.image_label(image_id, self.label_key)
            if label is None:
                self.n_unlabelled += 1
                continue
            best = None
            for r in out.get("instances", ()):
                if best is None or r["score"] > best["score"]:
                    best = r
            self.image_ids.append(image_id)
            self.y_true.append(label)
            self.y_det.append(None if best is None else best["category_id"])
            logits = out.get("cass_logits")
            if logits is not None:
                if self.head_class_ids is None:
                    raise ValueError("CassEvaluator got cass_logits but no head_class_ids to name them")
                self.head_true.append(label)
                self.y_head.append(self.head_class_ids[int(np.argmax(logits))])

    def evaluate(self) -> Metrics:
        out: Metrics = {
            "cass.class_ids": self.class_ids,
            "cass.class_names": [self.gt.cat_names[c] for c in self.class_ids],
            "cass.n_images_without_label": self.n_unlabelled,
        }
        det = classification_metrics(self.y_true, self.y_det, self.class_ids)
        for k, v in det.items():
            out[f"cass.detector.{k}"] = v
        src, main = "detector", det
        if self.y_head:
            head = classification_metrics(self.head_true, self.y_head, self.class_ids)
            for k, v in head.items():
                out[f"cass.head.{k}"] = v
            out["cass.head.n_images_without_logits"] = len(self.y_true) - len(self.y_head)
            src, main = "head", head
        out["cass.source"] = src
        for k in ("top1", "balanced_accuracy", "n_images", "confusion"):
            out[f"cass.{k}"] = main[k]
        return out
