"""Gradient accumulation through SAM3's trainer: the train loader yields a list of micro-batches."""

from __future__ import annotations

import pytest

from conftest import run_train, small_run_overrides


def test_collate_splits_into_micro_batches(tiny_data_root):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from sam3_angio.config import compose, finalize
    from sam3_angio.errors import ConfigError

    cfg = finalize(compose("cass", [f"paths.data_root={tiny_data_root}", "model.name=sam3_tiny",
                                    "data.demo.generate_if_missing=false", "trainer.gradient_accumulation_steps=2",
                                    "scratch.train_batch_size=1"]))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    data = cfg.trainer.data.train
    assert data.batch_size == 2
    dataset, collate = instantiate(data.dataset), instantiate(data.collate_fn)
    out = collate([dataset[0], dataset[1]])
    assert isinstance(out, list) and len(out) == 2
    assert all(b["all"].img_batch.shape[0] == 1 and len(b["all"].views) == 1 for b in out)
    with pytest.raises(ConfigError, match="gradient_accumulation_steps=2"):
        collate([dataset[0], dataset[1], dataset[2]])


def test_a_run_with_gradient_accumulation_trains(tiny_data_root, tmp_path):
    run_train(["-c", "vessel_segmentation", *small_run_overrides(tiny_data_root, tmp_path, epochs=1),
               "trainer.gradient_accumulation_steps=2", "scratch.train_batch_size=1"], check=True)
    assert (tmp_path / "checkpoints" / "checkpoint.pt").is_file()
