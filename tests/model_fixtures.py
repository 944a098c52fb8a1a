"""Real batches and small wrappers shared by model, loss and inference tests."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate


def make_batches(data_root: Path, task: str, n: int = 1, split: str = "train", overrides=()):
    """Real batches from our dataset + SAM3's transforms + our collate, as the trainer builds them."""
    from sam3_angio.config import compose, finalize

    cfg = finalize(compose(task, [f"paths.data_root={data_root}", "model.name=sam3_tiny",
                                  "data.demo.generate_if_missing=false", *overrides]))
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    data = cfg.trainer.data[split]
    dataset = instantiate(data.dataset)
    collate = instantiate(data.collate_fn)
    key = data.collate_fn.dict_key
    out = []
    for i in range(n):
        items = [dataset[(2 * i + j) % len(dataset)] for j in range(2)]
        out.append(collate(items)[key])
    return out


def wrapper(detector, **kw):
    from sam3_angio.model.view_conditioned import ViewConditionedSam3

    return ViewConditionedSam3(detector, class_ids=[1, 2, 12, 13], **kw)


def last_step(outputs):
    return outputs.output[-1][-1]




def loss_from_config(task: str = "cass", overrides=()):
    """``scratch.angio_loss`` as tools/train.py composes it for ``task`` (tiny model, the tiny data's classes)."""
    from omegaconf import OmegaConf

    from sam3_angio.config import compose

    classes = ["model.class_ids=[1,2,12,13]"] if task == "cass" else []
    cfg = compose(task, ["model.name=sam3_tiny", *classes, *overrides])
    with_model = OmegaConf.merge(cfg, {"model": {"resolved": "sam3_tiny"}})
    return instantiate(OmegaConf.to_container(with_model.scratch.angio_loss, resolve=True))
