"""``AngioTrainer``: SAM3's native Trainer, subclassed only where this project needs more of it.

- Checkpoints record what run made them (``angio``: task, classes, model), so a checkpoint given to
  the wrong config is caught by the inference Predictor instead of loading half its tensors.
- Training modes (``training.modes: [automatic, proofread]``): the loss names each pass's terms
  ``<mode>/<term>``; they are also logged as ``train/automatic/<term>``, ``train/proofread/<term>``.
- A LoRA run writes ``adapter.pt`` (LoRA weights + our heads) beside each checkpoint, recording its
  vessel group, LoRA options and base fingerprint (``sam3_angio/model/adapters.py``).
- SAM3 logs every environment variable at start-up (values included: tokens, credentials); here only
  an allow-list of harmless ones is logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Dict, Optional

import sam3.train.trainer as sam3_trainer
import torch
from omegaconf import DictConfig, OmegaConf
from sam3.train.trainer import Trainer, unwrap_ddp_if_wrapped

from sam3_angio.errors import UserError
from sam3_angio.model.adapters import adapter_info, adapter_path_for, save_adapter
from sam3_angio.model.lora import has_lora
from sam3_angio.model.view_conditioned import MODES

log = logging.getLogger(__name__)

# Environment variables worth having in a run's log; nothing else is written (values of the rest are
# the user's business: API tokens, passwords, cloud credentials).
HARMLESS_ENV = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SAM3_ANGIO_THREADS",
                "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID",
                "SLURM_JOB_NUM_NODES", "SLURM_NTASKS", "SLURM_CPUS_PER_TASK", "SLURM_JOB_PARTITION")


def log_harmless_env() -> None:
    """What SAM3's ``log_env_variables`` logs, restricted to ``HARMLESS_ENV``."""
    from sam3_angio.training.console import quiet_console

    quiet_console()  # SAM3 calls this right after setting up its console logging
    shown = {k: os.environ[k] for k in HARMLESS_ENV if k in os.environ}
    logging.info("environment (allow-listed; others are not logged): %s", shown)


def setup_logging_quietly(*args, **kwargs) -> None:
    """SAM3's ``setup_logging``, then its console handlers quieted before the first INFO line (the
    machine seed) reaches the console; the log file keeps everything."""
    from sam3_angio.training.console import quiet_console

    _sam3_setup_logging(*args, **kwargs)
    quiet_console()


# SAM3's Trainer.__init__ calls the names it imported; replacing them there is the narrowest fix.
_sam3_setup_logging = sam3_trainer.setup_logging
sam3_trainer.log_env_variables = log_harmless_env
sam3_trainer.setup_logging = setup_logging_quietly


class AngioTrainer(Trainer):
    """SAM3's Trainer + ``run_info`` (task, class ids, model name) written into every checkpoint, and
    the reliability this project adds (each in its own methods below):

    - an epoch that makes 0 optimiser steps is an error (nothing written as a success);
    - ``checkpoint.save_every_steps``: a resumable checkpoint every N steps (and on SLURM's requeue
      signal); a resume continues from that step of the epoch, in the same data order;
    - ``nan_guard``: a step with a non-finite loss or gradient is skipped (which term, which images go to
      the log); ``max_consecutive`` bad steps in a row stop the run; non-finite weights are never saved;
    - ``best_checkpoint``: ``checkpoint_best.pt`` by a validation metric (segm AP by default).
    """

    def __init__(self, *args: Any, run_info: Optional[Dict[str, Any]] = None,
                 nan_guard: Optional[Dict[str, Any]] = None, best_checkpoint: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        # Plain Python only: checkpoints are read back with weights_only=True, which refuses OmegaConf types.
        if isinstance(run_info, DictConfig):
            run_info = OmegaConf.to_container(run_info, resolve=True)
        self.run_info = json.loads(json.dumps(dict(run_info or {})))
        self._init_reliability(kwargs, nan_guard, best_checkpoint)
        from sam3_angio.training.console import import_sam3_eval_quietly, quiet_third_party_warnings

        quiet_third_party_warnings()
        import_sam3_eval_quietly()
        super().__init__(*args, **kwargs)
        self._init_console()

    def _step(self, batch, model, phase):
        key = next(iter(batch))
        step = self.steps[phase]
        self._step_problem = None
        inner = batch[key]
        ret = super()._step(batch, model, phase)
        self._log_mode_losses(ret[2], phase, key, step)
        if phase != "train":
            self._console_val_progress()
            return ret
        self._last_step_losses = ret[2]
        return self._guard_loss(*ret, inner, model)  # reliability: the NaN guard

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
        checkpoint = {**checkpoint, "angio": self.run_info,
                      "angio_progress": {"epoch": int(checkpoint["epoch"]), "batches_done": self._saving_batches}}
        super()._save_checkpoint(checkpoint, checkpoint_path)
        # A LoRA run also writes its adapter (LoRA matrices + our heads) beside the full checkpoint.
        model = unwrap_ddp_if_wrapped(self.model)
        if not has_lora(model):
            return
        path = adapter_path_for(checkpoint_path)
        info = adapter_info(model, self.run_info, epoch=checkpoint.get("epoch"))  # + vessel_group, lora, base
        if save_adapter(checkpoint["model"], path, info):
            full, small = os.path.getsize(checkpoint_path), os.path.getsize(path)
            logging.info("adapter %s: %.2f MB (checkpoint %.1f MB, %.1f%%)", path, small / 2**20, full / 2**20,
                         100.0 * small / max(full, 1))

    # ------------------------------------------------------------------ reliability: set-up
    def _init_reliability(self, kwargs: Dict[str, Any], nan_guard, best_checkpoint) -> None:
        ckpt = kwargs.get("checkpoint")
        ckpt = dict(OmegaConf.to_container(ckpt, resolve=True) if isinstance(ckpt, DictConfig) else (ckpt or {}))
        every = ckpt.pop("save_every_steps", 0) or 0
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise UserError(f"trainer.checkpoint.save_every_steps={every!r}: expected 0 (epoch ends only) or steps > 0")
        kwargs["checkpoint"] = ckpt  # SAM3's CheckpointConf does not know the key
        self.save_every_steps = every
        guard = dict(nan_guard or {})
        self.nan_max_consecutive = int(guard.get("max_consecutive", 5))
        best = dict(best_checkpoint or {})
        self.best_metric = best.get("metric", "segm.AP")
        self.best_mode = best.get("mode", "max")
        if self.best_mode not in ("max", "min"):
            raise UserError(f"trainer.best_checkpoint.mode={self.best_mode!r}: expected max or min")
        self._saving_batches = 0          # batches of the current epoch a checkpoint being written covers
        self._batches_done = 0            # batches of the current epoch done (trained or skipped)
        self._resume_batches = 0          # batches of the resumed epoch already done before the restart
        self._skip_resumed_val = False
        self._optimiser_steps_this_epoch = 0
        self._bad_in_row = 0
        self.skipped_steps = 0
        self._step_problem: Optional[str] = None
        global _ACTIVE
        _ACTIVE = self

    # ------------------------------------------------------------------ the epoch and the step
    def train_epoch(self, train_loader):
        self._check_loader_not_empty(train_loader)
        self._iters_this_epoch = len(train_loader)
        self._optimiser_steps_this_epoch = 0
        skip, self._resume_batches = self._resume_batches, 0
        self._batches_done = skip
        restore = None
        if skip:
            train_loader, restore = self._skip_done_batches(train_loader, skip)
        try:
            out = super().train_epoch(train_loader)
        finally:
            if restore:
                restore()
        self._batches_done = 0
        self._check_epoch_trained()
        return out

    def _run_step(self, batch, phase, loss_mts, extra_loss_mts, raise_on_error: bool = True):
        self._save_progress_if_due()
        super()._run_step(batch, phase, loss_mts, extra_loss_mts, raise_on_error=raise_on_error)
        self._guard_gradients()
        self._batches_done += 1
        self._console_step()

    # ------------------------------------------------------------------ reliability: no silent no-op epochs
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

    # ------------------------------------------------------------------ reliability: NaN guard
    def _guard_loss(self, losses, batch_size, step_losses, inner, model):
        """A non-finite loss (on any rank) becomes a zero loss on every rank, so every rank still runs
        DDP's gradient all-reduce; the step is then skipped on all of them in :meth:`_guard_gradients`."""
        (key, loss), = losses.items()
        bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0], device=loss.device)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item() == 0:
            return losses, batch_size, step_losses
        terms = [k for k, v in step_losses.items() if not torch.isfinite(torch.as_tensor(v).detach()).all()]
        self._step_problem = (f"non-finite loss {loss.item()} (terms: {', '.join(terms) or 'another rank'}; "
                              f"images: {self._image_ids(inner)})")
        # Through the forward's own graph (DDP expects exactly that one); the gradients it gives are
        # discarded in _guard_gradients on every rank.
        zero = torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0) * 0.0
        finite = {k: v for k, v in step_losses.items() if torch.isfinite(torch.as_tensor(v).detach()).all()}
        return {key: zero}, batch_size, finite

    @staticmethod
    def _image_ids(inner) -> str:
        try:
            ids = set()
            for m in inner.find_metadatas:
                for field in ("original_image_id", "coco_image_id"):
                    ids |= {int(i) for i in torch.as_tensor(getattr(m, field)).reshape(-1).tolist() if int(i) >= 0}
                if ids:
                    break
            return ", ".join(str(i) for i in sorted(ids)) or "unknown"
        except Exception:
            return "unknown"

    def _guard_gradients(self) -> None:
        """Skip the coming optimiser step when the loss or a gradient was not finite (grads set to None:
        AdamW leaves those parameters alone); ``nan_guard.max_consecutive`` bad steps in a row stop."""
        if self._step_problem is None:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
                self._step_problem = "non-finite gradient (finite loss)"
        if self._step_problem is None:
            self._bad_in_row = 0
            self._optimiser_steps_this_epoch += 1
            return
        self.optim.zero_grad(set_to_none=True)
        self._bad_in_row += 1
        self.skipped_steps += 1
        logging.warning("step %d of epoch %d skipped: %s (%d in a row)", self._batches_done, self.epoch,
                    self._step_problem, self._bad_in_row)
        if self._bad_in_row >= self.nan_max_consecutive:
            raise UserError(
                f"{self._bad_in_row} consecutive training steps were not finite (last: {self._step_problem}); "
                f"stopped without saving (the last checkpoint.pt is kept). Lower the learning rate "
                f"(scratch.lr_scale) or check those images; trainer.nan_guard.max_consecutive sets the limit"
            )

    def save_checkpoint(self, epoch, checkpoint_names=None):
        bad = [n for n, p in unwrap_ddp_if_wrapped(self.model).named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise UserError(
                f"the model's weights are not finite ({len(bad)} tensors, first {bad[0]}); no checkpoint written "
                f"(the last checkpoint.pt is kept)"
            )
        super().save_checkpoint(epoch, checkpoint_names)

    # ------------------------------------------------------------------ reliability: mid-epoch checkpoints
    def _save_progress_if_due(self) -> None:
        if self.save_every_steps and self._batches_done and self._batches_done % self.save_every_steps == 0:
            self.save_progress()

    def save_progress(self) -> None:
        """A resumable ``checkpoint.pt`` after ``self._batches_done`` batches of the current epoch."""
        self._saving_batches = self._batches_done
        try:
            self.save_checkpoint(self.epoch, ["checkpoint"])
        finally:
            self._saving_batches = 0
        logging.info("saved checkpoint.pt at epoch %d, batch %d", self.epoch, self._batches_done)

    def _skip_done_batches(self, loader, skip: int):
        """The epoch's loader without its first ``skip`` batches (same order: the sampler is seeded by
        the epoch; skipped batches are not loaded), and the schedulers shifted to match."""
        from torch.utils.data import DataLoader

        iters = len(loader)
        batches = list(loader.batch_sampler)[skip:]
        rest = DataLoader(loader.dataset, batch_sampler=_Fixed(batches), num_workers=loader.num_workers,
                          collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                          worker_init_fn=loader.worker_init_fn)
        original = self.optim.step_schedulers

        remaining = len(batches)

        def shifted(where, step=None):
            # SAM3 computes where/step from its position among the `remaining` batches; restate them
            # as the position in the whole epoch (``skip`` batches further on).
            done = (round(step) - self.epoch * remaining) if step is not None else round(
                (where * self.max_epochs - self.epoch) * remaining)
            exact = self.epoch + (skip + done) / iters
            return original(exact / self.max_epochs, step=int(exact * iters))

        self.optim.step_schedulers = shifted
        logging.info("resuming epoch %d after batch %d of %d", self.epoch, skip, iters)

        def restore():
            self.optim.step_schedulers = original

        return rest, restore

    def _load_resuming_checkpoint(self, ckpt_path: str):
        from sam3_angio.training.experiment import resumable_error

        problem = resumable_error(ckpt_path)
        if problem:
            raise UserError(problem)
        head = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
        progress = head.get("angio_progress")
        del head
        super()._load_resuming_checkpoint(ckpt_path)
        from sam3_angio.training.console import say

        done = int(progress["batches_done"]) if progress and progress.get("batches_done") else 0
        # Said on the console: a resumed run otherwise looks like a fresh one that starts at a later epoch.
        say(f"resuming from {ckpt_path}: epoch {self.epoch}"
            + (f" after its first {done} step(s)" if done else f" ({self.epoch} epoch(s) done)"))
        if done:
            self._resume_batches = done
            # The previous epoch's validation already ran before this mid-epoch checkpoint was written.
            self._skip_resumed_val = self.epoch > 0 and self.is_intermediate_val_epoch(self.epoch - 1)

    def run_val(self):
        if self._skip_resumed_val:
            self._skip_resumed_val = False
            return None
        return super().run_val()

    # ------------------------------------------------------------------ reliability: best checkpoint
    def val_epoch(self, val_loader, phase):
        self._val_total, self._val_done = len(val_loader), 0
        self._val_started = self._val_said = time.monotonic()
        out = super().val_epoch(val_loader, phase)
        self._keep_best(out)
        self._console_validation(out)
        return out

    def _keep_best(self, out: Dict[str, Any]) -> None:
        """``checkpoint_best.pt`` when the validation metric ``best_checkpoint.metric`` improved."""
        if not self.best_metric:
            return
        values = [v for k, v in out.items() if k == self.best_metric or k.endswith("/" + self.best_metric)]
        values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not values or not math.isfinite(values[0]):
            logging.warning("best checkpoint: validation gave no finite %r", self.best_metric)
            return
        value, key = values[0], f"angio_best/{self.best_metric}"
        old = self.best_meter_values.get(key)
        # A tie goes to the later epoch (more training at the same score: e.g. segm AP still 0 early on).
        if old is not None and (value < old if self.best_mode == "max" else value > old):
            return
        self.best_meter_values[key] = value
        self.best_meter_values["angio_best/epoch"] = int(self.epoch)
        self.save_checkpoint(self.epoch + 1, ["checkpoint_best"])
        logging.info("checkpoint_best.pt: %s = %.4f at epoch %d", self.best_metric, value, self.epoch)


    # ------------------------------------------------------------------ console (the rest: logs/log.txt)
    def _init_console(self) -> None:
        from sam3_angio.training.console import quiet_console

        quiet_console()
        self._ever_nonzero: set = set()
        self._last_step_losses: Dict[str, Any] = {}
        self._iters_this_epoch = 0

    def _setup_components(self):
        # SAM3 has set up its console logging by now: the module tree, optimiser groups and datasets
        # it logs at INFO go to logs/log.txt only.
        from sam3_angio.training.console import quiet_console

        quiet_console()
        return super()._setup_components()

    def _console_step(self) -> None:
        from sam3_angio.training.console import say, verbose

        every = max(1, int(getattr(self.logging_conf, "log_freq", 1) or 1))
        if verbose() or (self._batches_done % every and self._batches_done != self._iters_this_epoch):
            return
        terms = {}
        for k, v in (self._last_step_losses or {}).items():
            value = float(torch.as_tensor(v).detach().float().mean()) if torch.as_tensor(v).numel() else 0.0
            name = k.rsplit("/", 1)[-1].removeprefix("train_all_")
            if value != 0.0:
                self._ever_nonzero.add(name)
            # One-to-one terms only: the one-to-many ones (~80 % of the total) rise as boxes improve and
            # make the line unreadable (docs/learning.md); every term is in logs/log.txt and TensorBoard.
            if name in self._ever_nonzero and not name.endswith(("_acc", "_f1", "_o2m")):
                terms[name] = value
        core = terms.pop("core_loss", None)
        shown = "  ".join(f"{k} {v:.3g}" for k, v in terms.items())
        skipped = f"  ({self.skipped_steps} non-finite steps skipped)" if self.skipped_steps else ""
        say(f"epoch {self.epoch} step {self._batches_done}/{self._iters_this_epoch}  loss "
            f"{'nan' if core is None else f'{core:.4g}'}  {shown}{skipped}")

    #: Seconds between the console's progress lines of a long validation (a short one prints none).
    VAL_PROGRESS_EVERY_S = 30.0

    def _console_val_progress(self) -> None:
        """'validating: 120/300 batches, 61 s' every :data:`VAL_PROGRESS_EVERY_S`: the real model's
        validation of a study's frames on all 14 phrases runs for minutes with nothing else on the console."""
        from sam3_angio.training.console import say

        self._val_done += 1  # the counters are set by val_epoch, the only caller's caller
        now = time.monotonic()
        if now - self._val_said < self.VAL_PROGRESS_EVERY_S:
            return
        self._val_said = now
        say(f"validating after epoch {self.epoch}: {self._val_done}/{self._val_total} batches, "
            f"{now - self._val_started:.0f} s")

    def _console_validation(self, out: Dict[str, Any]) -> None:
        from sam3_angio.training.console import say

        picked = []
        for name in ("segm.AP", "bbox.AP", "segm.AP50", "dice", "cldice", "cass.naming_top1"):
            vals = [v for k, v in out.items() if k.endswith("/" + name) and isinstance(v, (int, float))]
            if vals:
                picked.append(f"{name} {float(vals[0]):.4f}")
        say(f"validation after epoch {self.epoch}: {'  '.join(picked) or 'no metrics (see logs/log.txt)'}")


class _Fixed:
    """A batch sampler of given index lists (the rest of a resumed epoch)."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


_ACTIVE: Optional[AngioTrainer] = None


def save_on_signal() -> bool:
    """Save the running trainer's progress now (SLURM's requeue signal); False when none runs here."""
    trainer = _ACTIVE
    if trainer is None or getattr(trainer, "optim", None) is None or trainer.mode == "val":
        return False
    if trainer._batches_done == 0:
        # Between epochs (validation, or before the first batch): the epoch-end checkpoint.pt is the
        # latest state; saving now would record the finished epoch's number with 0 batches and rewind it.
        return False
    try:
        trainer.save_progress()
    except Exception as e:  # the requeue goes on; the last periodic checkpoint resumes the run
        log.warning("could not save on the requeue signal: %s", e)
        return False
    return True
