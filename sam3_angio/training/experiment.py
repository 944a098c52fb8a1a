"""The experiment folder as one run's property: a resume continues the same run (same data, same model)
or stops and says so; ``--restart`` keeps the old run's files aside; a lock file keeps a second run out.
"""

from __future__ import annotations

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


def resumable_error(ckpt_path: str) -> Optional[str]:
    """Why ``ckpt_path`` cannot be resumed from (truncated, not a checkpoint, not a trainer's), or None.
    Memory-mapped, so reading the keys of a large checkpoint costs little."""
    import torch

    try:
        head = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0][:160]
        return (f"{ckpt_path} cannot be resumed from ({type(e).__name__}: {first}); it is truncated or not a "
                f"checkpoint: move it away, or use --restart")
    missing = [k for k in ("model", "optimizer", "epoch", "steps", "loss") if not isinstance(head, dict) or k not in head]
    if missing:
        return (f"{ckpt_path} is not a resumable trainer checkpoint (no {', '.join(missing)}); move it away, "
                f"or use --restart")
    return None


def resume_differences(cfg: DictConfig) -> List[str]:
    """Keys of ``data`` / ``model`` whose value differs from the run whose ``checkpoint.pt`` is in the
    folder (read from its ``config_resolved.yaml``); empty when nothing would be resumed or all agree."""
    if resume_checkpoint(cfg) is None:
        return []
    saved_path = os.path.join(str(cfg.paths.experiment_dir), "config_resolved.yaml")
    if not os.path.isfile(saved_path):
        return []
    saved = OmegaConf.to_container(OmegaConf.load(saved_path), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=True)
    keys = []
    for section in RESUME_KEYS:
        a, b = _flat(saved.get(section, {}), section), _flat(now.get(section, {}), section)
        # Only the folder's run's keys: one it does not have is a setting added to the configs since it
        # was written, and resuming applies its default, as a new run would.
        for key in a:
            if any(key == p or key.startswith(p + ".") for p in RESUME_IGNORED):
                continue
            if a.get(key) != b.get(key):
                keys.append((key, f"{key}: {a.get(key)!r} in the folder's run, {b.get(key)!r} now"))
    keys.sort(key=lambda kv: (RESUME_FIRST.index(kv[0]) if kv[0] in RESUME_FIRST else len(RESUME_FIRST), kv[0]))
    return [text for _, text in keys]


def resume_error(cfg: DictConfig) -> Optional[str]:
    diffs = resume_differences(cfg)
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

