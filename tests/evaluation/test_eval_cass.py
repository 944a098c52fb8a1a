"""CASS classification metrics: top-1, balanced accuracy and confusion, from a head's logits and from
the detector's best-scoring category."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from sam3_angio.cass import coco_categories
from sam3_angio.evaluation import EvaluationInputError, classification_metrics, evaluate_files
from sam3_angio.evaluation.synthetic import synthetic_coco


def test_classification_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    classes = [1, 2, 3, 4, 12, 13]
    y = rng.choice(classes, size=200, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.05]).tolist()
    p = [t if rng.random() < 0.6 else int(rng.choice(classes)) for t in y]
    m = classification_metrics(y, p, classes)
    assert m["top1"] == pytest.approx(accuracy_score(y, p), abs=1e-15)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p), abs=1e-15)
    assert m["confusion"] == confusion_matrix(y, p, labels=classes).tolist()


def test_missing_prediction_counts_as_wrong_and_outside_any_column():
    m = classification_metrics([1, 1, 2, 2], [1, None, 2, 1], [1, 2])
    assert m["top1"] == 0.5 and m["n_no_prediction"] == 1
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5) / 2)
    assert m["confusion"] == [[1, 0], [1, 1]]


@pytest.fixture()
def cass_gt():
    """One labelled segment a frame, as the study's CASS data: image field cass_id, CASS categories."""
    cats = coco_categories([1, 2, 12, 13])
    gt = synthetic_coco(8, cat_ids=[c["id"] for c in cats], size=32, seed=5, p_present=1.0)
    gt["categories"] = cats
    labels = [1, 1, 2, 12, 13, 13, 13, 2]
    keep = []
    for im, lab in zip(gt["images"], labels):
        im["cass_id"] = lab
        keep += [a for a in gt["annotations"] if a["image_id"] == im["id"] and a["category_id"] == lab]
    gt["annotations"] = keep
    return gt, labels


def _det(image_id, cat, score, size=32):
    return {"image_id": image_id, "category_id": cat, "score": score, "bbox": [1, 1, 5, 5]}


def test_detector_best_scoring_category_is_scored_per_image(cass_gt):
    gt, labels = cass_gt
    preds = []
    wrong = {3: 13, 5: 12}  # image 3 (true 2) best = 13; image 5 (true 13) best = 12
    for i, lab in enumerate(labels, start=1):
        preds.append(_det(i, lab, 0.6))
        if i in wrong:
            preds.append(_det(i, wrong[i], 0.9))
        preds.append(_det(i, 1 if lab != 1 else 2, 0.1))
    m = evaluate_files(gt, preds, iou_types=("bbox",))
    assert m["cass.source"] == "detector" and m["cass.n_images"] == 8
    assert m["cass.top1"] == 6 / 8
    # recalls: 1 -> 2/2, 2 -> 1/2, 12 -> 1/1, 13 -> 2/3
    assert m["cass.balanced_accuracy"] == pytest.approx((1 + 0.5 + 1 + 2 / 3) / 4)
    conf = np.array(m["cass.confusion"])
    assert conf.sum() == 8 and conf[1, 3] == 1 and conf[3, 2] == 1  # rows/cols in order 1, 2, 12, 13


def test_head_logits_take_precedence_and_both_sources_are_kept(cass_gt, tmp_path):
    gt, labels = cass_gt
    class_ids = [1, 2, 12, 13]
    preds = [_det(i, lab, 0.9) for i, lab in enumerate(labels, start=1)]  # detector: all right
    logits = []
    for i, lab in enumerate(labels, start=1):
        guess = lab if i % 4 else 12  # images 4 and 8 -> 12 (image 4 is truly 12)
        logits.append({"image_id": i, "logits": [5.0 if c == guess else 0.0 for c in class_ids]})
    path = tmp_path / "logits.json"
    path.write_text(json.dumps({"class_ids": class_ids, "predictions": logits}))
    m = evaluate_files(gt, preds, iou_types=("bbox",), cass_logits=str(path))
    assert m["cass.source"] == "head" and m["cass.head.top1"] == 7 / 8 and m["cass.top1"] == 7 / 8
    assert m["cass.detector.top1"] == 1.0


def test_bad_logits_file_is_an_error(cass_gt):
    gt, _ = cass_gt
    preds = [_det(1, 1, 0.9)]
    with pytest.raises(EvaluationInputError, match="needs 4 logits"):
        evaluate_files(gt, preds, cass_logits={"class_ids": [1, 2, 12, 13], "predictions": [{"image_id": 1, "logits": [1, 2]}]})
    with pytest.raises(EvaluationInputError, match="not ground-truth categories"):
        evaluate_files(gt, preds, cass_logits={"class_ids": [1, 99], "predictions": []})


def test_auto_mode_skips_frames_with_many_segments_and_says_why():
    gt = synthetic_coco(4, cat_ids=(1, 2, 3), size=32, seed=1)
    m = evaluate_files(gt, [_det(1, 1, 0.9)], iou_types=("bbox",))
    assert m["cass.top1"] is None and "4 of 4 annotated images" in m["cass.skipped"]
    forced = evaluate_files(gt, [_det(1, 1, 0.9)], iou_types=("bbox",), cass=True)
    assert forced["cass.n_images"] == 0 and forced["cass.n_images_without_label"] == 4
