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
    for key, reg in (("model.view.encoder", registry.VIEW_ENCODERS), ("model.cass_head", registry.HEADS),
                     ("model.regression_head", registry.HEADS)):
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

    modes = OmegaConf.select(cfg, "training.modes")
    if modes is not None:  # the model builder raises the same error, after the data and model are built
        from sam3_angio.model.view_conditioned import check_modes

        try:
            check_modes(OmegaConf.to_object(modes) if OmegaConf.is_config(modes) else modes)
        except ConfigError as e:
            report.errors.append(str(e))

    if OmegaConf.select(cfg, "data.max_phrases_per_frame") is not None:  # before the data loader is built
        from sam3_angio.transforms.queries import SamplePhrases

        try:
            SamplePhrases(OmegaConf.select(cfg, "data.max_phrases_per_frame"),
                          OmegaConf.select(cfg, "data.negative_phrase_fraction", default=0.25))
        except ConfigError as e:
            report.errors.append(str(e))

    group = OmegaConf.select(cfg, "data.vessel_group")
    if group:  # an unknown group fails here, not after the model is built
        from sam3_angio.data.vessel_groups import as_groups, group_vessels

        try:
            group_vessels(str(group), as_groups(OmegaConf.select(cfg, "data.vessel_groups")))
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

    from sam3_angio.errors import UserError
    from sam3_angio.training.data_prep import missing_data_message, will_generate_demo

    try:
        gen = will_generate_demo(cfg) and will_generate_data
    except UserError as e:
        report.errors.append(str(e))
        gen = False
    absent = [OmegaConf.select(cfg, k) for k in ("data.train_json", "data.val_json")]
    absent = [p for p in absent if p and not os.path.isfile(p)]
    if absent and not gen:
        report.errors.append(missing_data_message(cfg, absent))
    else:
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
    check_batches(cfg, report)
    check_reliability_options(cfg, report)
    check_experiment_dir(cfg, report)
    check_splits(cfg, report)
    from sam3_angio.training.experiment import resume_error

    resume = resume_error(cfg)
    if resume:
        report.errors.append(resume)
    return report


def world_size(cfg: DictConfig) -> int:
    return max(1, int(OmegaConf.select(cfg, "launcher.gpus_per_node") or 1)) * max(
        1, int(OmegaConf.select(cfg, "launcher.num_nodes") or 1))


def check_batches(cfg: DictConfig, report: CheckReport) -> None:
    """Batch sizes are whole numbers >= 1 (caught here, not by torch after the model is built)."""
    for key, user_key in (("trainer.data.train.batch_size", "scratch.train_batch_size"),
                          ("trainer.data.val.batch_size", "scratch.val_batch_size")):
        value = OmegaConf.select(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            report.errors.append(f"{key} = {value!r} (from {user_key}): expected a whole number >= 1")


def train_steps_per_epoch(n_images: int, batch_size: int, world: int, drop_last: bool) -> int:
    """Optimiser steps an epoch makes: SAM3's DistributedSampler gives each rank ceil(n / world) frames."""
    per_rank = -(-n_images // world) if n_images else 0
    return per_rank // batch_size if drop_last else -(-per_rank // batch_size)


def check_splits(cfg: DictConfig, report: CheckReport) -> None:
    """Each existing split is consistent (sam3_angio.data.coco_check) and the training split gives at
    least one optimiser step an epoch; a run that trains nothing is an error, not a 'run finished'."""
    from sam3_angio.data.coco_check import check_coco_split
    from sam3_angio.errors import DataError

    sizes = {}
    for split in ("train", "val"):
        js, imgs = OmegaConf.select(cfg, f"data.{split}_json"), OmegaConf.select(cfg, f"data.{split}_images")
        if not js or not os.path.isfile(js):
            continue
        try:
            sizes[split] = check_coco_split(js, imgs if imgs and os.path.isdir(imgs) else None).images
        except DataError as e:
            report.errors.append(str(e))
    n = sizes.get("train")
    batch = OmegaConf.select(cfg, "trainer.data.train.batch_size")
    if n is None or not isinstance(batch, int) or batch < 1:
        return
    limit = OmegaConf.select(cfg, "trainer.data.train.dataset.limit_ids")
    used = min(n, int(limit)) if limit else n
    drop_last = bool(OmegaConf.select(cfg, "trainer.data.train.drop_last"))
    world = world_size(cfg)
    if train_steps_per_epoch(used, batch, world, drop_last) == 0:
        why = "has no images" if used == 0 else (
            f"gives {used} frame(s){' after limit_ids' if used < n else ''} to {world} rank(s), fewer than "
            f"scratch.train_batch_size={batch} with drop_last")
        report.errors.append(
            f"data.train_json = {OmegaConf.select(cfg, 'data.train_json')}: the training split {why}, so an "
            f"epoch would make 0 optimiser steps; add training data or lower scratch.train_batch_size"
        )


def check_reliability_options(cfg: DictConfig, report: CheckReport) -> None:
    """The options AngioTrainer adds (docs/training.md), checked before the model is built."""
    every = OmegaConf.select(cfg, "trainer.checkpoint.save_every_steps")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        report.errors.append(f"trainer.checkpoint.save_every_steps = {every!r}: expected 0 (epoch ends only) or steps > 0")
    k = OmegaConf.select(cfg, "trainer.nan_guard.max_consecutive")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        report.errors.append(f"trainer.nan_guard.max_consecutive = {k!r}: expected a whole number >= 1")
    mode = OmegaConf.select(cfg, "trainer.best_checkpoint.mode")
    if mode is not None and mode not in ("max", "min"):
        report.errors.append(f"trainer.best_checkpoint.mode = {mode!r}: expected max or min")


def check_experiment_dir(cfg: DictConfig, report: CheckReport) -> None:
    """``paths.experiment_dir`` can be written (its nearest existing folder is a writable folder), and a
    ``checkpoint.pt`` there, which the run would resume from, can be read."""
    exp = OmegaConf.select(cfg, "paths.experiment_dir")
    if not exp:
        return
    probe = os.path.abspath(exp)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        report.errors.append(f"paths.experiment_dir = {exp}: {probe} is a file, not a folder; choose another path")
    elif not os.access(probe, os.W_OK | os.X_OK):
        report.errors.append(f"paths.experiment_dir = {exp}: {probe} is not writable; choose another path")
    from sam3_angio.training.experiment import resumable_error, resume_checkpoint

    ckpt = resume_checkpoint(cfg)
    problem = resumable_error(ckpt) if ckpt else None
    if problem:
        report.errors.append(problem)
