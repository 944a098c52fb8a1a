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
    from sam3_angio.training.config import register_resolvers

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


# SAM3's COCO meter keys -> our stable names.
_COCO_KEYS = {
    "AP": "AP", "AP_50": "AP50", "AP_75": "AP75", "AP_small": "APs", "AP_medium": "APm",
    "AP_large": "APl", "AR_maxDets@1": "AR1", "AR_maxDets@10": "AR10", "AR_maxDets@100": "AR100",
}


def summarize_val_stats(stats: Dict[str, Any]) -> Dict[str, Any]:
    """Flat, stable metric names (``bbox.AP``, ``segm.AP50``, ``per_class.<name>.segm.AP``, ...) from
    one line of SAM3's ``val_stats.json``."""
    out: Dict[str, Any] = {}
    for key, value in stats.items():
        tail = key.rsplit("/", 1)[-1]
        if tail.startswith("coco_eval_"):
            iou, _, metric = tail[len("coco_eval_"):].partition("_")
            if metric in _COCO_KEYS:
                out[f"{iou}.{_COCO_KEYS[metric]}"] = value
        elif "/" in key and key.startswith("Meters_train/"):
            # Our own meters already report stable names (segm.AP, per_class.<name>.segm.AP, ...).
            if "." in tail or tail in ("dice", "iou", "arcade_f1", "dice_f1"):  # e.g. cass_head.top1
                out[tail] = value
    return out


def write_metrics(cfg: DictConfig) -> Optional[Dict[str, Any]]:
    """``<experiment_dir>/metrics.json`` from the last validation of the run."""
    log_dir = OmegaConf.select(cfg, "trainer.logging.log_dir")
    exp_dir = OmegaConf.select(cfg, "paths.experiment_dir")
    path = os.path.join(log_dir, "val_stats.json") if log_dir else None
    if not path or not os.path.isfile(path):
        return None
    with open(path) as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    if not lines:
        return None
    last = json.loads(lines[-1])
    metrics = summarize_val_stats(last)
    # Our meter writes the full set (per-class AP, Dice, F1, CASS, ignored counts) next to its dump.
    for meter in (OmegaConf.select(cfg, "trainer.meters.val") or {}).values():
        for conf in (meter or {}).values():
            full = os.path.join(str(conf.get("dump_dir", "")), "metrics.json")
            if conf.get("dump_dir") and os.path.isfile(full):
                with open(full) as f:
                    metrics.update(json.load(f))
    metrics["epoch"] = last.get("Trainer/epoch")
    with open(os.path.join(exp_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    return metrics
