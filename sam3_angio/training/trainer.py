"""``AngioTrainer``: SAM3's native Trainer, subclassed only where this project needs more of it.

- Checkpoints record what run made them (``angio``: task, classes, model), so a checkpoint given to
  the wrong config is caught by the inference Predictor instead of loading half its tensors.
- A LoRA run writes ``adapter.pt`` (LoRA weights + our heads) beside each checkpoint
  (``sam3_angio/model/adapters.py``).
- SAM3 logs every environment variable at start-up (values included: tokens, credentials); here only
  an allow-list of harmless ones is logged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

import sam3.train.trainer as sam3_trainer
from omegaconf import DictConfig, OmegaConf
from sam3.train.trainer import Trainer

from sam3_angio.model.adapters import adapter_path_for, save_adapter

log = logging.getLogger(__name__)

# Environment variables worth having in a run's log; nothing else is written (values of the rest are
# the user's business: API tokens, passwords, cloud credentials).
HARMLESS_ENV = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SAM3_ANGIO_THREADS",
                "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID",
                "SLURM_JOB_NUM_NODES", "SLURM_NTASKS", "SLURM_CPUS_PER_TASK", "SLURM_JOB_PARTITION")


def log_harmless_env() -> None:
    """What SAM3's ``log_env_variables`` logs, restricted to ``HARMLESS_ENV``."""
    shown = {k: os.environ[k] for k in HARMLESS_ENV if k in os.environ}
    logging.info("environment (allow-listed; others are not logged): %s", shown)


# SAM3's Trainer.__init__ calls the name it imported; replacing it there is the narrowest fix.
sam3_trainer.log_env_variables = log_harmless_env


class AngioTrainer(Trainer):
    """SAM3's Trainer + ``run_info`` (task, class ids, model name) written into every checkpoint."""

    def __init__(self, *args: Any, run_info: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        # Plain Python only: checkpoints are read back with weights_only=True, which refuses OmegaConf types.
        if isinstance(run_info, DictConfig):
            run_info = OmegaConf.to_container(run_info, resolve=True)
        self.run_info = json.loads(json.dumps(dict(run_info or {})))
        super().__init__(*args, **kwargs)

    def _save_checkpoint(self, checkpoint, checkpoint_path):
        checkpoint = {**checkpoint, "angio": self.run_info}
        super()._save_checkpoint(checkpoint, checkpoint_path)
        # A LoRA run also writes its adapter (LoRA matrices + our heads) beside the full checkpoint.
        path = adapter_path_for(checkpoint_path)
        if save_adapter(checkpoint["model"], path, {**self.run_info, "epoch": checkpoint.get("epoch")}):
            full, small = os.path.getsize(checkpoint_path), os.path.getsize(path)
            logging.info("adapter %s: %.2f MB (checkpoint %.1f MB, %.1f%%)", path, small / 2**20, full / 2**20,
                         100.0 * small / max(full, 1))
