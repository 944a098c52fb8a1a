"""``AngioTrainer``: SAM3's native Trainer, subclassed only where this project needs more of it.

- Checkpoints record what run made them (``angio``: task, classes, model), so a checkpoint given to
  the wrong config is caught by the inference Predictor instead of loading half its tensors.
- Training modes (``training.modes: [automatic, proofread]``): the loss names each pass's terms
  ``<mode>/<term>``; they are also logged as ``train/automatic/<term>``, ``train/proofread/<term>``.
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

from sam3_angio.errors import UserError
from sam3_angio.model.view_conditioned import MODES

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

    def _step(self, batch, model, phase):
        key = next(iter(batch))
        step = self.steps[phase]
        ret = super()._step(batch, model, phase)
        self._log_mode_losses(ret[2], phase, key, step)
        return ret

    def _log_mode_losses(self, step_losses: Dict[str, Any], phase: str, key: str, step: int) -> None:
        """Per-mode loss terms (``Losses/train_all_automatic/loss_mask``) also as ``train/automatic/loss_mask``."""
        if step % self.logging_conf.log_scalar_frequency != 0:
            return
        prefix = f"Losses/{phase}_{key}_"
        for name, value in step_losses.items():
            term = name[len(prefix):] if name.startswith(prefix) else None
            if term and term.split("/", 1)[0] in MODES:
                self.logger.log(f"{phase}/{term}", value, step)

    def _save_checkpoint(self, checkpoint, checkpoint_path):
        checkpoint = {**checkpoint, "angio": self.run_info}
        super()._save_checkpoint(checkpoint, checkpoint_path)

    # ------------------------------------------------------------------ reliability: no silent no-op epochs
    def train_epoch(self, train_loader):
        self._check_loader_not_empty(train_loader)
        self._optimiser_steps_this_epoch = 0
        out = super().train_epoch(train_loader)
        self._check_epoch_trained()
        return out

    def _run_step(self, batch, phase, loss_mts, extra_loss_mts, raise_on_error: bool = True):
        super()._run_step(batch, phase, loss_mts, extra_loss_mts, raise_on_error=raise_on_error)
        self._optimiser_steps_this_epoch = getattr(self, "_optimiser_steps_this_epoch", 0) + 1

    def _check_loader_not_empty(self, train_loader) -> None:
        if len(train_loader) > 0:
            return
        conf = self.data_conf.train
        n = len(self.train_dataset.dataset) if self.train_dataset is not None else 0
        raise UserError(
            f"epoch {self.epoch}: the training data loader is empty ({n} frame(s) over {os.environ.get('WORLD_SIZE', '1')} "
            f"rank(s), batch size {conf.get('batch_size')}, drop_last={conf.get('drop_last')}): 0 optimiser steps; "
            f"add training data or lower scratch.train_batch_size"
        )

    def _check_epoch_trained(self) -> None:
        if self._optimiser_steps_this_epoch == 0:
            raise UserError(
                f"epoch {self.epoch} made 0 optimiser steps (every batch failed or was skipped); nothing was "
                f"trained, so no checkpoint or metrics were written; see {self.logging_conf.log_dir}/log.txt"
            )
