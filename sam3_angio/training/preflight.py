"""Checking a config before anything expensive starts (``tools/train.py --check``, and every launch).

Resolves every interpolation, imports every ``_target_`` (a misspelt one gets a did-you-mean from the
registry), and checks that every path the run needs exists, or will be generated (the embedded demo).
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, List, Tuple

from omegaconf import DictConfig, OmegaConf

from sam3_angio import registry
from sam3_angio.errors import ConfigError


@dataclass
class CheckReport:
    errors: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    targets: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        lines = [f"checked {self.targets} _target_ entries"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  ERROR: {e}" for e in self.errors]
        lines.append("config OK" if self.ok else f"config has {len(self.errors)} problem(s)")
        return "\n".join(lines)


def iter_targets(node: Any, path: str = "") -> List[Tuple[str, str]]:
    """``(config key, _target_ string)`` for every ``_target_`` in a resolved container."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if k == "_target_" and isinstance(v, str):
                out.append((sub, v))
            else:
                out.extend(iter_targets(v, sub))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(iter_targets(v, f"{path}[{i}]"))
    return out


def locate(target: str):
    """Import ``pkg.module.attr[.attr]``; raise ImportError/AttributeError as Python would."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as e:
            if e.name and not ".".join(parts[:i]).startswith(e.name):
                raise  # the module exists but one of its own imports failed
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    return importlib.import_module(target)


def suggest(target: str) -> str:
    hint = registry.suggest_target(target)
    if hint is None:
        # Same module, near-miss attribute: 'sam3.train.trainer.Trainr' -> 'Trainer'.
        mod, _, attr = target.rpartition(".")
        try:
            names = dir(importlib.import_module(mod))
            close = difflib.get_close_matches(attr, names, n=1, cutoff=0.7)
            hint = f"{mod}.{close[0]}" if close else None
        except Exception:
            hint = None
    return f" Did you mean {hint!r}?" if hint else ""


def check_config(cfg: DictConfig, will_generate_data: bool = True) -> CheckReport:
    report = CheckReport()
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:
        report.errors.append(f"config does not resolve: {e}")
        return report

    for key, target in iter_targets(container):
        report.targets += 1
        try:
            locate(target)
        except (ImportError, AttributeError) as e:
            report.errors.append(f"{key} = {target!r} cannot be imported ({e}).{suggest(target)}")

    # Parts built by registered name inside the model (not _target_ paths): each name must be known.
    for key, reg in (("model.view.encoder", registry.VIEW_ENCODERS), ("model.cass_head", registry.HEADS)):
        spec = OmegaConf.select(cfg, key)
        if spec is None:
            continue
        name = spec if isinstance(spec, str) else spec.get("name")
        try:
            reg.get(name)
        except ConfigError as e:
            report.errors.append(f"{key}: {e}")

    lora = OmegaConf.select(cfg, "model.lora")
    if lora is not None:  # groups and keys of model.lora (the model builder raises the same error)
        from sam3_angio.model.lora import lora_options

        try:
            lora_options(OmegaConf.to_container(lora, resolve=True))
        except ConfigError as e:
            report.errors.append(str(e))

    def need(key: str, kind: str = "file", generated: bool = False) -> None:
        value = OmegaConf.select(cfg, key)
        if value in (None, ""):
            return
        exists = os.path.isfile(value) if kind == "file" else os.path.isdir(value)
        if not exists:
            if generated:
                report.notes.append(f"{key} = {value} does not exist yet: the demo data will be generated there")
            else:
                report.errors.append(f"{key} = {value}: {kind} not found")

    gen = bool(OmegaConf.select(cfg, "data.demo.generate_if_missing")) and will_generate_data
    for key in ("data.train_json", "data.val_json"):
        need(key, "file", generated=gen)
    for key in ("data.train_images", "data.val_images"):
        need(key, "dir", generated=gen)
    need("paths.sam3_checkpoint", "file")
    if OmegaConf.select(cfg, "init.require_phase1"):
        ckpt_dir = OmegaConf.select(cfg, "trainer.checkpoint.save_dir")
        resuming = ckpt_dir and os.path.isfile(os.path.join(ckpt_dir, "checkpoint.pt"))
        if not resuming:
            need("paths.phase1_checkpoint", "file")
    return report
