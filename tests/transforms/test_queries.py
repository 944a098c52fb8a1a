"""Phrase sub-sampling for training (data.max_phrases_per_frame): fewer (frame, phrase) queries a CASS
step, positives and negatives both kept, validation untouched."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from conftest import check_train
from model_fixtures import make_batches
from sam3_angio.errors import ConfigError
from sam3_angio.transforms.queries import SamplePhrases


@pytest.mark.parametrize("k, n_pos, n_neg, want_pos, want_neg", [
    (3, 8, 6, 2, 1),     # many segments visible: still one absent category a step
    (3, 1, 13, 1, 2),    # one segment visible: negatives fill the slots
    (4, 2, 0, 2, 0),     # nothing to cut
    (8, 10, 4, 6, 2),    # a quarter negatives
    (1, 5, 5, 1, 0),     # a cap of one keeps a positive
    (3, 0, 14, 0, 3),    # a frame with no labelled segment: negatives only
])
def test_counts_of_positives_and_negatives(k, n_pos, n_neg, want_pos, want_neg):
    random.seed(0)
    pos, neg = list(range(n_pos)), list(range(100, 100 + n_neg))
    kept = SamplePhrases(k).choose(pos, neg)
    assert len(kept) == len(set(kept)) == min(k, n_pos + n_neg)
    assert (sum(i < 100 for i in kept), sum(i >= 100 for i in kept)) == (want_pos, want_neg)


def test_none_keeps_every_query():
    assert SamplePhrases(None).choose([0, 2], [1, 3, 4]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bad", [0, -2, 2.5, "3", True])
def test_bad_cap_is_a_config_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match="data.max_phrases_per_frame"):
        SamplePhrases(bad)


def test_bad_cap_is_refused_by_check_before_any_data_is_read(tiny_data_root):
    proc = check_train(["-c", "configs/angiography/cass.yaml", "--check", f"paths.data_root={tiny_data_root}",
                        "model.name=sam3_tiny", "data.max_phrases_per_frame=0"])
    assert proc.returncode != 0
    assert "data.max_phrases_per_frame" in proc.stdout + proc.stderr


def test_training_frames_keep_the_cap_with_a_positive_and_a_negative_each(tiny_data_root):
    full = make_batches(tiny_data_root, "cass", n=1, overrides=["model.class_ids=[1,2,12,13]"])[0]
    assert Counter(int(i) for i in full.find_inputs[0].img_ids) == {0: 4, 1: 4}  # 2 present + 2 absent a frame

    random.seed(1)
    names = set()
    for batch in make_batches(tiny_data_root, "cass", n=6,
                              overrides=["data.max_phrases_per_frame=2", "model.class_ids=[1,2,12,13]"]):
        kinds = {}
        present = batch.find_targets[0].num_boxes.tolist()
        for q, (img, text_id) in enumerate(zip(batch.find_inputs[0].img_ids.tolist(),
                                               batch.find_inputs[0].text_ids.tolist())):
            kinds.setdefault(img, []).append(present[q] > 0)
            names.add(batch.find_text_batch[text_id])
        assert sorted(kinds) == [0, 1]
        assert all(sorted(k) == [False, True] for k in kinds.values()), kinds  # one present, one absent
    assert len(names) == 4  # a new draw each load: every category is asked over the epoch


def test_validation_keeps_every_phrase(tiny_data_root):
    over = ["data.max_phrases_per_frame=1", "model.class_ids=[1,2,12,13]"]
    val = make_batches(tiny_data_root, "cass", n=1, split="val", overrides=over)[0]
    per_frame = Counter(int(i) for i in val.find_inputs[0].img_ids)
    assert min(per_frame.values()) == 4


def test_a_step_on_sampled_phrases_trains(tiny_data_root):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sam3_angio.config import compose, finalize
    from sam3_angio.training.launch import ensure_process_group

    ensure_process_group()
    over = [f"paths.data_root={tiny_data_root}", "model.name=sam3_tiny", "data.demo.generate_if_missing=false",
            "model.class_ids=[1,2,12,13]", "data.max_phrases_per_frame=2"]
    cfg = OmegaConf.create(OmegaConf.to_container(finalize(compose("cass", over)), resolve=True))
    batch = make_batches(tiny_data_root, "cass", n=1, overrides=over[3:])[0]
    torch.manual_seed(0)
    model = instantiate(cfg.trainer.model, _convert_="all").train()
    loss = instantiate(cfg.scratch.angio_loss)(model(batch), [model.back_convert(t) for t in batch.find_targets])
    loss["core_loss"].backward()
    assert torch.isfinite(loss["core_loss"])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.cass_head.parameters())
