"""The experiment folder as one run's property: a resume continues the same run (same data, same model)
or stops and says so; ``--restart`` keeps the old run's files aside; a lock file keeps a second run out.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from sam3_angio.errors import UserError

#: The config sections a resumed run must share with the run that wrote the checkpoint.
RESUME_KEYS = ("data", "model")
#: Settings inside those sections that do not change what is trained (memory/time trades with equal results).
RESUME_IGNORED = ("data.demo", "model.activation_checkpointing", "model.shared_image_work")
#: Differences named first in the message: what tells two runs apart at a glance.
RESUME_FIRST = ("data.task", "model.resolved", "data.train_json", "model.class_ids")
LOCK_NAME = ".run.lock"


def _flat(node: Any, prefix: str) -> Dict[str, Any]:
    if isinstance(node, dict):
        out: Dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: node}


def resume_checkpoint(cfg: DictConfig) -> Optional[str]:
    save_dir = OmegaConf.select(cfg, "trainer.checkpoint.save_dir")
    path = os.path.join(save_dir, "checkpoint.pt") if save_dir else None
    return path if path and os.path.isfile(path) else None


@functools.lru_cache(maxsize=2)
def _load_head(path: str, mtime_ns: int, size: int) -> Any:
    from sam3_angio.model.checkpoint import load_torch_file

    return load_torch_file(path, "checkpoint", mmap=True)


def resume_head(ckpt_path: str) -> Any:
    """The folder's ``checkpoint.pt`` as ``torch.load`` gives it, memory-mapped (the keys of a large
    checkpoint cost little), read once however many checks look at it (keyed by path, mtime and size,
    so a checkpoint saved since is read again); raises ``CheckpointError``."""
    st = os.stat(ckpt_path)
    return _load_head(ckpt_path, st.st_mtime_ns, st.st_size)


def resumable_error(ckpt_path: str) -> Optional[str]:
    """Why ``ckpt_path`` cannot be resumed from (truncated, not a checkpoint, not a trainer's), or None."""
    from sam3_angio.model.checkpoint import CheckpointError

    try:
        head = resume_head(ckpt_path)
    except CheckpointError as e:
        return f"{ckpt_path} cannot be resumed from: it {getattr(e, 'reason', e)}; move it away, or use --restart"
    missing = [k for k in ("model", "optimizer", "epoch", "steps", "loss")
               if not isinstance(head, dict) or k not in head]
    if missing:
        return (f"{ckpt_path} is not a resumable trainer checkpoint (no {', '.join(missing)}); move it away, "
                f"or use --restart")
    from sam3_angio.model.checkpoint import non_finite

    bad = non_finite(head["model"]) if isinstance(head["model"], dict) else []
    if bad:  # the trainer never saves such weights: a damaged file (resumed, every step would be skipped)
        return (f"{ckpt_path} cannot be resumed from: its weights hold NaN or inf values ({len(bad)} tensors, first "
                f"{bad[0]}); it is damaged: move it away, or use --restart")
    return None


def _checkpoint_run_info(ckpt_path: str) -> Dict[str, Any]:
    """The ``angio`` run info (task, model, class_ids, vessel_group) our trainer writes into a checkpoint."""
    from sam3_angio.model.checkpoint import CheckpointError

    try:
        head = resume_head(ckpt_path)
    except CheckpointError:
        return {}  # resumable_error says why
    info = head.get("angio") if isinstance(head, dict) else None
    return dict(info) if isinstance(info, dict) else {}


class _UnreadableRunConfig(Exception):
    pass


class _UnknownOrigin(Exception):
    """The folder's checkpoint.pt records no run info and has no config_resolved.yaml beside it."""


def _is_trainer_checkpoint(ckpt_path: str) -> bool:
    from sam3_angio.model.checkpoint import CheckpointError

    try:
        head = resume_head(ckpt_path)
    except CheckpointError:
        return False
    return isinstance(head, dict) and "model" in head


def resume_differences(cfg: DictConfig) -> List[str]:
    """Keys of ``data`` / ``model`` whose value differs from the run whose ``checkpoint.pt`` is in the
    folder (read from its ``config_resolved.yaml``, and from the run info the checkpoint itself records:
    task, model, classes, vessel group - also when the folder has no ``config_resolved.yaml``); empty
    when nothing would be resumed or all agree. With neither (a checkpoint of a version before the run
    info, its config gone) nothing tells which run it is: ``_UnknownOrigin``."""
    ckpt = resume_checkpoint(cfg)
    if ckpt is None:
        return []
    now = OmegaConf.to_container(cfg, resolve=True)
    keys = []
    recorded = _checkpoint_run_info(ckpt)
    saved_path = os.path.join(str(cfg.paths.experiment_dir), "config_resolved.yaml")
    if not recorded and not os.path.isfile(saved_path) and _is_trainer_checkpoint(ckpt):
        raise _UnknownOrigin(ckpt)  # a damaged or foreign file: resumable_error says so instead
    current = (now.get("trainer") or {}).get("run_info") or {}
    for name, value in recorded.items():
        if name in current and current[name] != value:
            keys.append((f"checkpoint.angio.{name}",
                         f"{name}: {value!r} in the folder's checkpoint.pt, {current[name]!r} now"))
    if os.path.isfile(saved_path):
        try:
            saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
            if not isinstance(saved, dict):
                raise ValueError(f"expected a mapping, found {type(saved).__name__}")
        except Exception as e:
            first = (str(e).splitlines() or [""])[0][:120]
            raise _UnreadableRunConfig(f"{saved_path} (the folder's run's config) cannot be read "
                                       f"({type(e).__name__}: {first})") from None
        for section in RESUME_KEYS:
            part = saved.get(section, {})
            a, b = _flat(part if isinstance(part, dict) else {}, section), _flat(now.get(section, {}), section)
            # Only the folder's run's keys: one it does not have is a setting added to the configs since it
            # was written, and resuming applies its default, as a new run would.
            for key in a:
                if any(key == p or key.startswith(p + ".") for p in RESUME_IGNORED):
                    continue
                if a.get(key) != b.get(key):
                    keys.append((key, f"{key}: {a.get(key)!r} in the folder's run, {b.get(key)!r} now"))
    order = RESUME_FIRST + tuple(f"checkpoint.angio.{k}" for k in ("task", "model", "class_ids"))
    keys.sort(key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    # the same difference seen in the config and in the checkpoint is said once (the config's words)
    found = {k for k, _ in keys}
    return [text for key, text in keys if not any(key == f"checkpoint.angio.{name}" and cfg_key in found
                                                  for cfg_key, name in _SAME_AS_RUN_INFO.items())]


#: config keys whose value the checkpoint's run info also records
_SAME_AS_RUN_INFO = {"data.task": "task", "model.resolved": "model", "model.class_ids": "class_ids",
                     "data.vessel_group": "vessel_group"}


def resume_error(cfg: DictConfig) -> Optional[str]:
    try:
        diffs = resume_differences(cfg)
    except _UnreadableRunConfig as e:
        return (f"paths.experiment_dir={cfg.paths.experiment_dir} holds a checkpoint.pt this command would resume, "
                f"but {e}, so it is not known to be this run: fix or remove that file if it is, use a new "
                f"paths.experiment_dir, or --restart to start over there (the old run's files are kept aside)")
    except _UnknownOrigin as e:
        # Resumed, SAM3's strict load of another model's weights would fail with a long traceback, or
        # another run's weights of the same shapes would train on as this run.
        return (f"paths.experiment_dir={cfg.paths.experiment_dir} holds a checkpoint.pt ({e}) this version cannot "
                f"tell the origin of: it records no run info (task, model, classes; an older version's checkpoint?) "
                f"and the folder has no config_resolved.yaml, so it is not known to be this run. Use --restart to "
                f"start over there (the old run's files are kept aside), or a new paths.experiments_root (or "
                f"paths.experiment_dir) for this run")
    if not diffs:
        return None
    more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
    return (
        f"paths.experiment_dir={cfg.paths.experiment_dir} holds another run's checkpoint.pt, which this "
        f"command would resume: {'; '.join(diffs[:3])}{more}. Use a new paths.experiment_dir, or --restart "
        f"to start over there (the old run's files are kept aside)"
    )


def restart(cfg: DictConfig) -> List[str]:
    """Move the folder's resumable state aside (``checkpoints.<time>``, ``logs.<time>``,
    ``metrics.<time>.json``) so the run starts from scratch; returns the new names."""
    exp = str(cfg.paths.experiment_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for path in (OmegaConf.select(cfg, "trainer.checkpoint.save_dir"), OmegaConf.select(cfg, "trainer.logging.log_dir"),
                 os.path.join(exp, "metrics.json")):
        if path and os.path.exists(path):
            root, ext = os.path.splitext(path.rstrip("/"))
            dest = f"{root}.{stamp}{ext}"
            os.replace(path, dest)
            moved.append(dest)
    return moved


# --------------------------------------------------------------------------- one run a folder
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ExperimentLock:
    """``<experiment_dir>/.run.lock`` (pid, host, start time) held while a run is in the folder. A
    second run stops naming the first; the lock of a dead process on this host is taken over."""

    def __init__(self, experiment_dir: str) -> None:
        self.path = os.path.join(experiment_dir, LOCK_NAME)
        self.held = False

    def _holder(self) -> Dict[str, Any]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "ExperimentLock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                    os.unlink(self.path)  # stale: that run died without cleaning up
                    continue
                if not holder:  # being written by the other run right now
                    time.sleep(0.2)
                    continue
                raise UserError(
                    f"experiment folder {os.path.dirname(self.path)} is in use by pid {pid} on host {host} "
                    f"(since {holder.get('started')}, lock {self.path}); wait for that run, use another "
                    f"paths.experiment_dir, or delete the lock if that run is gone"
                )
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise UserError(f"could not take the lock {self.path}; delete it if no run is using the folder")

    def release(self) -> None:
        if self.held and self._holder().get("pid") == os.getpid():
            os.unlink(self.path)
        self.held = False

    def __enter__(self) -> "ExperimentLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

