"""Running SAM3's native trainer for one rank, and what every run does around it (CPU patches, thread
budget, final metrics). Used by the local launcher and by SLURM tasks alike."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def run_trainer(cfg: DictConfig) -> Optional[Dict[str, Any]]:
    """Instantiate ``cfg.trainer`` (SAM3's Trainer) and run it. Expects RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR and MASTER_PORT in the environment. Resumes from ``checkpoint.pt`` in
    ``trainer.checkpoint.save_dir`` when present (SAM3's own resume). Returns the final metrics on
    rank 0 (None on other ranks)."""
    from hydra.utils import instantiate

    from sam3_angio import cpu_compat
    from sam3_angio.config import register_resolvers

    cpu_compat.apply()
    register_resolvers()
    threads = os.environ.get("SAM3_ANGIO_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    # Resolved here, on the node that runs: the trainer instantiates sub-trees detached from the
    # root, where interpolations to `scratch.*` or `paths.*` could no longer be followed.
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    trainer = instantiate(cfg.trainer, _recursive_=False)
    try:
        trainer.run()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    return write_metrics(cfg)


def _meter_out_dirs(cfg: DictConfig):
    for meter in (OmegaConf.select(cfg, "trainer.meters.val") or {}).values():
        for conf in (meter or {}).values():
            if conf and conf.get("out_dir"):
                yield str(conf["out_dir"])


def write_metrics(cfg: DictConfig) -> Optional[Dict[str, Any]]:
    """``<experiment_dir>/metrics.json``: the last validation's metrics (written by the validation meter,
    ``AngioValMeter``, with the names of ``evaluation/keys.py``) and the epoch they belong to."""
    metrics: Dict[str, Any] = {}
    for out_dir in _meter_out_dirs(cfg):
        path = os.path.join(out_dir, "metrics.json")
        if os.path.isfile(path):
            with open(path) as f:
                metrics.update(json.load(f))
    if not metrics:
        return None
    log_dir = OmegaConf.select(cfg, "trainer.logging.log_dir")
    stats = os.path.join(log_dir, "val_stats.json") if log_dir else None
    if stats and os.path.isfile(stats):
        with open(stats) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        if lines:
            metrics["epoch"] = json.loads(lines[-1]).get("Trainer/epoch")
    with open(os.path.join(cfg.paths.experiment_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
