"""The ARCADE challenge F1 (official rules, including its quirk) and the honest dice_f1, by hand."""

from __future__ import annotations

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from sam3_angio.evaluation import evaluate_files
from sam3_angio.evaluation.arcade_f1 import arcade_f1_segmentation, arcade_f1_stenosis

H = W = 10


def rows(r0, r1, c0=0, c1=W - 1):
    """A 10x10 mask with rows r0..r1 and columns c0..c1 (inclusive) set, as an RLE result field."""
    m = np.zeros((H, W), dtype=np.uint8)
    m[r0 : r1 + 1, c0 : c1 + 1] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": rle["counts"].decode()}


def rle(*a):
    """The same mask as pycocotools' compressed RLE (bytes), what the F1 functions take."""
    seg = rows(*a)
    return {"size": seg["size"], "counts": seg["counts"].encode()}


def gt_dataset(anns):
    images = [{"id": i, "file_name": f"f{i}.png", "height": H, "width": W} for i in (1, 2)]
    out = []
    for k, (img, cat, seg) in enumerate(anns):
        out.append({"id": k + 1, "image_id": img, "category_id": cat, "segmentation": seg,
                    "bbox": [0, 0, W, H], "area": 1.0, "iscrowd": 0})
    cats = [{"id": c, "name": n} for c, n in ((1, "A"), (2, "B"), (3, "C"))]
    return {"images": images, "annotations": out, "categories": cats}


def pred(img, cat, seg, score):
    return {"image_id": img, "category_id": cat, "segmentation": seg, "score": score}


def test_two_image_case_equals_the_hand_computation():
    gt = gt_dataset([
        (1, 1, rows(0, 1)),  # A: 20 px, the first A annotation (the one the official rule uses)
        (1, 1, rows(8, 9)),  # A again: 20 px, ignored by arcade_f1, part of the union in dice_f1
        (1, 2, rows(4, 5)),  # B: 20 px
        (2, 1, rows(0, 4, 0, 3)),  # image 2, A: 5 rows x 4 cols = 20 px
    ])
    preds = [
        pred(1, 1, rows(8, 9), 0.8),  # listed first but scores lower: not the "first" A prediction
        pred(1, 1, rows(0, 0), 0.9),  # highest-scoring A: 10 px, all inside the first A
        pred(1, 2, rows(4, 6), 0.7),  # B: 30 px, 20 of them on B
        pred(2, 1, rows(0, 4, 0, 4), 0.9),  # image 2, A: 25 px, 20 on A
        pred(2, 3, rows(7, 9, 7, 9), 0.6),  # image 2, category C is not in its ground truth
        pred(2, 2, rows(7, 9, 0, 2), 0.2),  # below the 0.5 threshold: does not count at all
    ]
    m = evaluate_files(gt, preds, iou_types=("segm",), score_thr=0.5)
    # arcade_f1 (F1 = 2 TP / (|pred| + |gt|)):
    #   image 1: A: first GT A (20 px) vs best A prediction (10 px), TP 10 -> 20/30 = 2/3
    #            B: 20 px vs 30 px, TP 20 -> 40/50 = 0.8               image 1 = (2/3 + 0.8) / 2 = 11/15
    #   image 2: A alone would score 40/45, but C is predicted and absent from the ground truth:
    #            the official quirk sets the image's scores to 0       image 2 = 0
    #   arcade_f1 = (11/15 + 0) / 2 = 11/30
    assert m["arcade_f1"] == pytest.approx(11 / 30, abs=1e-12)
    assert m["arcade.n_images_zeroed_by_quirk"] == 1
    # dice_f1 (unions, categories in GT or predictions, no zeroing):
    #   image 1: A: GT rows 0-1 + 8-9 (40 px) vs predictions rows 0 + 8-9 (30 px), TP 30 -> 60/70 = 6/7
    #            B: 0.8                                               image 1 = (6/7 + 0.8) / 2 = 29/35
    #   image 2: A: 40/45 = 8/9, C: predicted, no GT -> 0              image 2 = 4/9
    #   dice_f1 = (29/35 + 4/9) / 2 = 401/630
    assert m["dice_f1"] == pytest.approx(401 / 630, abs=1e-12)
    # dice (full tree): image 1: GT rows 0-1, 4-5, 8-9 = 60 px; predictions rows 0, 4-6, 8-9 = 60 px;
    #   overlap 10 + 20 + 20 = 50 -> 100/120 = 5/6. image 2: GT 20 px; predictions 25 + 9 = 34 px;
    #   overlap 20 -> 40/54 = 20/27. dice = (5/6 + 20/27) / 2 = 85/108
    assert m["dice"] == pytest.approx(85 / 108, abs=1e-12)
    assert m["per_class.A.dice_f1"] == pytest.approx((6 / 7 + 8 / 9) / 2, abs=1e-12)


def test_a_wrong_category_zeroes_the_image_whatever_its_order():
    a, b = rle(0, 1), rle(4, 5)
    gt = [(1, a), (2, b)]
    for preds in ([(1, a), (2, b), (3, b)], [(3, b), (1, a), (2, b)]):
        score, per = arcade_f1_segmentation(gt, preds)
        assert score == 0.0 and per == {1: 0.0, 2: 0.0}
    assert arcade_f1_segmentation(gt, gt) == (1.0, {1: 1.0, 2: 1.0})
    assert arcade_f1_segmentation(gt, [(1, a)]) == (0.5, {1: 1.0, 2: 0.0})


def test_stenosis_rule_matches_each_prediction_to_the_first_overlapping_region():
    r = rle
    gt = [r(0, 1), r(5, 6), r(8, 9, 0, 4)]  # 20, 20, 10 px
    preds = [r(0, 2), r(0, 0), r(3, 3)]
    # r(0,2): 30 px on the first region (20 px), TP 20 -> 40/50 = 0.8
    # r(0,0): 10 px, also first overlaps region 1 (taken again) -> 20/30 = 2/3
    # r(3,3): overlaps nothing -> adds nothing (false positives cost nothing in the official rule)
    # 3 regions, 2 matched predictions -> one 0 appended: mean(0.8, 2/3, 0) = 22/45
    assert arcade_f1_stenosis(gt, preds) == pytest.approx(22 / 45, abs=1e-12)
    assert arcade_f1_stenosis(gt, []) == 0.0
    assert arcade_f1_stenosis([], preds) is None


def test_challenge_submission_format_is_matched_by_file_name_and_scored_in_file_order():
    gt = gt_dataset([(1, 1, rows(0, 1)), (2, 1, rows(0, 4, 0, 3))])
    # A COCO dataset as predictions, its own image ids, no scores (ARCADE submissions look like this).
    sub = {
        "images": [{"id": 10, "file_name": "f2.png"}, {"id": 11, "file_name": "f1.png"}],
        "categories": gt["categories"],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 1, "segmentation": rows(0, 1)},  # exact on f1
            {"id": 2, "image_id": 11, "category_id": 1, "segmentation": rows(5, 5)},  # second: unused
            {"id": 3, "image_id": 10, "category_id": 1, "segmentation": rows(0, 4, 0, 3)},  # exact on f2
        ],
    }
    m = evaluate_files(gt, sub, iou_types=("segm",))
    assert m["arcade_f1"] == 1.0
    assert m["meta.pred_format"] == "coco_dataset" and m["meta.n_pred_remapped_by_file_name"] == 3
    assert any("no score" in w for w in m["warnings"])
