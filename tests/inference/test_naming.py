"""Naming predicted segments: the fusion rule of the text query and the CASS head, and the end-to-end
naming metric that scores it (each ground-truth segment matched to a predicted instance)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from sam3_angio.evaluation import evaluate_files
from sam3_angio.evaluation.perturb import gt_as_predictions
from sam3_angio.evaluation.synthetic import synthetic_coco
from sam3_angio.inference.naming import name_probabilities


def test_query_rule_keeps_the_query_category():
    p = name_probabilities("query", torch.tensor([2, 0]), torch.tensor([0.9, 0.2]),
                           torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]]), 3)
    assert p.argmax(1).tolist() == [2, 0]


def test_head_rule_follows_the_head_alone():
    head = torch.tensor([[0.7, 0.2, 0.1]])
    assert torch.equal(name_probabilities("head", torch.tensor([2]), torch.tensor([0.99]), head, 3), head)


def test_fused_rule_keeps_a_confident_query_and_lets_the_head_rename_an_unsure_one():
    head = torch.tensor([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1]])
    p = name_probabilities("fused", torch.tensor([1, 1]), torch.tensor([0.95, 0.2]), head, 3)
    assert torch.allclose(p.sum(1), torch.ones(2))
    assert p[0].argmax() == 1  # query says class 1 with 0.95: 0.3 * 0.967 beats 0.6 * 0.017
    assert p[1].argmax() == 0  # query unsure (0.2): the head's class 0 wins
    # a uniform head leaves the query's category in place
    uniform = torch.full((1, 3), 1 / 3)
    assert name_probabilities("fused", torch.tensor([2]), torch.tensor([0.3]), uniform, 3).argmax() == 2


def test_a_query_outside_the_heads_classes_is_named_by_the_head():
    head = torch.tensor([[0.1, 0.8, 0.1]])
    p = name_probabilities("fused", torch.tensor([-1]), torch.tensor([0.9]), head, 3)
    assert torch.allclose(p, head)


def _gt(tmp_path):
    gt = synthetic_coco(6, cat_ids=(1, 2, 12, 13), size=48, seed=3,
                        names={1: "proximal RCA", 2: "mid RCA", 12: "proximal LAD", 13: "mid LAD"})
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path


def test_naming_top1_is_one_for_true_names_and_drops_when_names_are_swapped(tmp_path):
    gt_path = _gt(tmp_path)
    exact = gt_as_predictions(str(gt_path))
    m = evaluate_files(str(gt_path), exact)
    assert m["cass.naming_top1"] == 1.0 and m["cass.naming_match_rate"] == 1.0
    assert m["cass.top1"] is None  # frames with several segments have no image-level class
    swapped = copy.deepcopy(exact)
    cats = sorted({p["category_id"] for p in swapped})
    for p in swapped[::2]:  # every other segment under the next category's name
        p["category_id"] = cats[(cats.index(p["category_id"]) + 1) % len(cats)]
    s = evaluate_files(str(gt_path), swapped)
    assert s["cass.naming_match_rate"] == 1.0
    assert s["cass.naming_top1"] == pytest.approx(1 - len(swapped[::2]) / len(swapped))
    # a segment nobody found counts as wrong
    dropped = [p for p in exact if p["image_id"] != exact[0]["image_id"]]
    d = evaluate_files(str(gt_path), dropped)
    assert d["cass.naming_top1"] < 1.0 and d["cass.naming_top1"] == pytest.approx(d["cass.naming_match_rate"])
