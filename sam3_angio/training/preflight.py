"""Checking a config before anything expensive starts (``tools/train.py --check``, and every launch).

Resolves every interpolation, imports every ``_target_`` (a misspelt one gets a did-you-mean from the
registry), and checks that every path the run needs exists, or will be generated (the embedded demo).
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

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


def check_config(cfg: DictConfig, will_generate_data: bool = True, restarting: bool = False) -> CheckReport:
    """Every problem of ``cfg`` found before anything expensive. ``restarting`` (``--restart``): the folder's
    checkpoint.pt will be moved aside, so it is neither checked nor resumed."""
    report = CheckReport()
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:
        report.errors.append(resolution_error(cfg, e))
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
        if not exists and kind == "file" and os.path.isdir(value):
            report.errors.append(f"{key} = {value} is a folder, not a file: pass the file in it")
        elif not exists:
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
        resuming = not restarting and ckpt_dir and os.path.isfile(os.path.join(ckpt_dir, "checkpoint.pt"))
        if not resuming:
            need("paths.phase1_checkpoint", "file")
    check_batches(cfg, report)
    check_numbers(cfg, report)
    check_learning_rates(cfg, report)
    check_reliability_options(cfg, report)
    check_experiment_dir(cfg, report, restarting)
    check_init_checkpoints(cfg, report, restarting)
    check_splits(cfg, report)
    from sam3_angio.training.experiment import resume_error

    resume = None if restarting else resume_error(cfg)
    if resume:
        report.errors.append(resume)
    return report


_ABSENT = object()


def _raw(node: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def resolution_error(cfg: DictConfig, e: Exception) -> str:
    """One line for an interpolation that cannot be computed: the key, its expression and the values it
    uses (``scratch.lr_scale=abc`` fails in ``scratch.lr_transformer = ${times:8e-4,${scratch.lr_scale}}``),
    instead of OmegaConf's message with numpy's ufunc text over three lines."""
    import re

    key = getattr(e, "full_key", None)
    cause = (str(getattr(e, "msg", None) or e).splitlines() or [""])[0]
    cause = cause.split(" raised while resolving interpolation: ", 1)[-1][:160]
    if not key:
        return f"config does not resolve: {cause}"
    raw = OmegaConf.to_container(cfg, resolve=False)
    expr = _raw(raw, key)
    used = []
    for ref in re.findall(r"\$\{([\w.]+)\}", str(expr)):
        value = _raw(raw, ref)
        if value is not _ABSENT and not (isinstance(value, str) and "${" in value):
            used.append(f"{ref}={value!r}")
    uses = f"; it uses {', '.join(used)}: is one of them of the wrong type?" if used else ""
    return f"{key} = {expr} cannot be computed ({type(e.__cause__ or e).__name__}: {cause}){uses}"


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


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


#: (key, smallest allowed whole number, the key a user sets when it differs): checked before the model is built
WHOLE_NUMBERS = (
    ("trainer.max_epochs", 1, None),
    ("trainer.val_epoch_freq", 1, None),
    ("trainer.gradient_accumulation_steps", 1, None),
    ("trainer.seed_value", 0, None),
    ("trainer.logging.log_freq", 1, None),
    ("scratch.resolution", 14, None),
    ("scratch.num_workers", 0, None),
    ("launcher.gpus_per_node", 1, "--num-gpus"),
    ("launcher.num_nodes", 1, "--num-nodes"),
    ("trainer.data.train.dataset.limit_ids", 1, "profiles.<model>.limit_train_images"),
)


def check_numbers(cfg: DictConfig, report: CheckReport) -> None:
    """Counts the trainer reads are whole numbers in range: ``trainer.max_epochs=0`` trained nothing and
    wrote the untrained weights as checkpoint_best.pt and their metrics as a finished run; ``=abc`` or
    ``trainer.val_epoch_freq=0`` failed with a traceback after the model was built; ``limit_train_images=-1``
    left out one frame (a Python slice) and ``0`` meant every frame here but none in the dataset."""
    for key, minimum, user_key in WHOLE_NUMBERS:
        value = OmegaConf.select(cfg, key)
        if value is None and key.endswith("limit_ids"):
            continue  # no limit
        if value is None or not _whole(value, minimum):
            where = f" (from {user_key.replace('<model>', str(cfg.model.resolved))})" if user_key else ""
            report.errors.append(f"{key} = {value!r}{where}: expected a whole number >= {minimum}")
    mode = OmegaConf.select(cfg, "trainer.mode")
    if mode not in ("train", "train_only", "val"):
        report.errors.append(f"trainer.mode = {mode!r}: expected train, train_only or val")
    for key in ("model.lora.enabled", "model.enable_segmentation"):
        value = OmegaConf.select(cfg, key)
        if value is not None and not isinstance(value, bool):
            report.errors.append(f"{key} = {value!r}: expected true or false")


def _scheduler_values(node: Any):
    """``(where, value)`` of every number a param scheduler config sets (``base_lr``, ``value``, ...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("base_lr", "value", "start_value", "end_value") and not isinstance(v, (dict, list)):
                yield k, v
            elif k not in ("param_names", "module_cls_names"):
                yield from ((f"{k}.{w}", x) for w, x in _scheduler_values(v))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from ((f"[{i}].{w}", x) for w, x in _scheduler_values(v))


def check_learning_rates(cfg: DictConfig, report: CheckReport) -> None:
    """Learning rates and weight decays are finite numbers >= 0, and some learning rate is > 0: SAM3 sets
    them on the optimiser at every step, past AdamW's own check, so a negative rate trained uphill."""
    import math

    try:
        options = OmegaConf.to_container(OmegaConf.select(cfg, "trainer.optim.options"), resolve=True) or {}
    except Exception:
        return  # the resolution error is reported by check_config
    for option, user_key in (("lr", "scratch.lr_scale / scratch.lr_*"), ("weight_decay", "scratch.wd")):
        values = list(_scheduler_values(options.get(option)))
        bad = [(w, v) for w, v in values if isinstance(v, bool) or not isinstance(v, (int, float))
               or not math.isfinite(v) or v < 0]
        if bad:
            where, value = bad[0]
            report.errors.append(f"trainer.optim.options.{option}{where} = {value!r} (from {user_key}): expected a "
                                 f"finite number >= 0")
        elif option == "lr" and values and all(v == 0 for _, v in values):
            report.errors.append(f"trainer.optim.options.lr: every learning rate is 0 (from {user_key}): the run "
                                 f"would train nothing")


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
        report.errors.append(f"trainer.checkpoint.save_every_steps = {every!r}: expected 0 (epoch ends only) or "
                             f"steps > 0")
    k = OmegaConf.select(cfg, "trainer.nan_guard.max_consecutive")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        report.errors.append(f"trainer.nan_guard.max_consecutive = {k!r}: expected a whole number >= 1")
    mode = OmegaConf.select(cfg, "trainer.best_checkpoint.mode")
    if mode is not None and mode not in ("max", "min"):
        report.errors.append(f"trainer.best_checkpoint.mode = {mode!r}: expected max or min")


def _nearest_existing(path: str) -> str:
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return probe


def _unwritable_folder(probe: str) -> Optional[str]:
    """Why ``probe`` (an existing path) cannot hold new files, or None."""
    if not os.path.isdir(probe):
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


#: What the trainer writes into trainer.checkpoint.save_dir (SAM3 saves <name>.tmp, then moves it over <name>).
SAVED_NAMES = ("checkpoint.pt", "checkpoint_best.pt", "adapter.pt", "adapter_best.pt")


def check_experiment_dir(cfg: DictConfig, report: CheckReport, restarting: bool = False) -> None:
    """``paths.experiment_dir`` can be written (its nearest existing folder is a writable folder), and a
    ``checkpoint.pt`` there, which the run would resume from, can be read. ``trainer.checkpoint.save_dir``
    can hold the checkpoints the run saves: SAM3 finds out at the first save, after an epoch of training."""
    exp = OmegaConf.select(cfg, "paths.experiment_dir")
    if not exp:
        return
    probe = _nearest_existing(exp)
    problem = _unwritable_folder(probe)
    if problem:
        report.errors.append(f"paths.experiment_dir = {exp}: {problem}; choose another path")
    check_checkpoint_dir(cfg, report, restarting, already=probe)
    from sam3_angio.training.experiment import resumable_error, resume_checkpoint

    ckpt = None if restarting else resume_checkpoint(cfg)
    problem = resumable_error(ckpt) if ckpt else None
    if problem:
        report.errors.append(problem)
    elif ckpt:
        finished = finished_run(cfg, ckpt)
        if finished:
            report.errors.append(finished)


def check_checkpoint_dir(cfg: DictConfig, report: CheckReport, restarting: bool = False, already: str = "") -> None:
    """``trainer.checkpoint.save_dir`` is a writable folder (or will be made in one), with no folder where a
    checkpoint is saved. ``already``: a path whose problem is reported (not said twice). With ``restarting``
    the folder is moved aside first, so only where it will be made again counts."""
    save_dir = OmegaConf.select(cfg, "trainer.checkpoint.save_dir")
    if not save_dir:
        return
    key = f"trainer.checkpoint.save_dir = {save_dir}"
    probe = _nearest_existing(os.path.dirname(os.path.abspath(save_dir)) if restarting else save_dir)
    problem = None if probe == already else _unwritable_folder(probe)
    if problem:
        report.errors.append(f"{key}: {problem}, so the run could not save its checkpoints; make it a writable "
                             f"folder or choose another paths.experiment_dir")
        return
    if restarting or not os.path.isdir(save_dir):
        return
    for name in SAVED_NAMES:
        for path in (os.path.join(save_dir, name), os.path.join(save_dir, name + ".tmp")):
            if os.path.isdir(path):
                report.errors.append(f"{key}: {path} is a folder, where the run saves a checkpoint file; move it "
                                     f"away, or use --restart (the folder's checkpoints are kept aside)")
                return


def finished_run(cfg: DictConfig, ckpt: str) -> Optional[str]:
    """Why resuming ``ckpt`` would train nothing (its run already trained ``trainer.max_epochs``
    epochs), or None. SAM3 would skip the training loop, validate again and rewrite metrics, predictions
    and checkpoint_best.pt (the demo also its learning curve, without phase 1) as a finished run."""
    from sam3_angio.training.experiment import resume_head

    if OmegaConf.select(cfg, "trainer.mode") not in ("train", "train_only"):
        return None
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    if not _whole(max_epochs, 1):
        return None  # check_numbers says so
    epoch = resume_head(ckpt).get("epoch")  # resumable_error read it: a dict of a trainer's checkpoint
    if not _whole(epoch, 0) or epoch < max_epochs:
        return None
    return (f"{ckpt} is a finished run: it trained {epoch} epoch(s), trainer.max_epochs={max_epochs}, so "
            f"resuming would train nothing. Raise trainer.max_epochs to train it further, use --restart to "
            f"train again from scratch (its files are kept aside), or score it with tools/eval.py --checkpoint {ckpt}")


def check_init_checkpoints(cfg: DictConfig, report: CheckReport, restarting: bool = False) -> None:
    """The weights a new run starts from, read before the model is built (memory-mapped): ``paths.sam3_checkpoint``
    for the real model and the phase 1 checkpoint that phase 2 loads must be readable torch files of finite
    tensors (one pass over the weights, which the build reads next anyway), of the model size being trained."""
    from sam3_angio.errors import UserError
    from sam3_angio.model.builders import SAM3_IMAGE_PARTS
    from sam3_angio.model.checkpoint import read_checkpoint, require_parts, sam3_image_keys
    from sam3_angio.training.experiment import resume_checkpoint

    resolved = OmegaConf.select(cfg, "model.resolved")

    def read(key: str, path: str, parts, hint: str = "") -> None:
        try:
            sd, meta = read_checkpoint(path, key.split(".")[-1].replace("_", " "), mmap=True, finite=True)
            if meta.get("model") and meta["model"] != resolved:
                raise UserError(f"{path} holds {meta['model']} weights, but this run trains {resolved} "
                                f"(model.name): pass a {resolved} checkpoint, or model.name={meta['model']}")
            if parts:
                require_parts(sam3_image_keys(sd), parts, path)
            lora = [k for k in sd if "lora_" in k]
            if lora and not OmegaConf.select(cfg, "model.lora.enabled"):  # load_into refuses it after the build
                raise UserError(f"{path} holds LoRA adapters ({len(lora)} tensors, first {lora[0]}) and this run has "
                                f"no LoRA (model.lora.enabled=false): they would be dropped; pass "
                                f"model.lora.enabled=true with the r and targets of its run")
        except UserError as e:
            report.errors.append(f"{key}: {e}{hint}")

    sam3 = OmegaConf.select(cfg, "paths.sam3_checkpoint")
    if resolved == "sam3" and sam3 and os.path.isfile(sam3):
        read("paths.sam3_checkpoint", sam3, SAM3_IMAGE_PARTS)
    init = OmegaConf.select(cfg, "trainer.checkpoint.model_weight_initializer")
    target = init.get("_target_", "") if isinstance(init, DictConfig) else ""
    if not str(target).endswith("load_phase1") or (resume_checkpoint(cfg) and not restarting):
        return  # a resumed run continues from its own checkpoint.pt, never from phase 1 again
    path = OmegaConf.select(cfg, "paths.phase1_checkpoint")
    if path and os.path.isdir(path):
        inside = os.path.join(path, "checkpoint.pt") if os.path.isfile(os.path.join(path, "checkpoint.pt")) \
            else os.path.join(path, "checkpoints", "checkpoint.pt")
        report.errors.append(f"paths.phase1_checkpoint = {path} is a folder, not a checkpoint file: pass "
                             f"paths.phase1_checkpoint={inside}")
        return
    if path and os.path.isfile(path):
        from sam3_angio.model.init import phase1_choice

        chosen, _ = phase1_choice(path, bool(OmegaConf.select(cfg, "init.phase1_best", default=True)))
        read("paths.phase1_checkpoint", chosen, SAM3_IMAGE_PARTS,
             "" if chosen == path else f" (phase 1's best checkpoint, used before the {os.path.basename(path)} "
                                       f"given; init.phase1_best=false starts from that one)")
    elif path:
        from sam3_angio.training.showcase import wants_phase1_first

        parent = os.path.dirname(path)
        if wants_phase1_first(cfg) and (os.path.basename(path) != "checkpoint.pt"
                                        or os.path.basename(parent) != "checkpoints"):
            report.errors.append(
                f"paths.phase1_checkpoint = {path} does not exist, and the demo would train phase 1 into "
                f"{os.path.dirname(parent)}, which writes <folder>/checkpoints/checkpoint.pt, not this file: pass "
                f"the checkpoint.pt of a phase 1 run, or a path ending in checkpoints/checkpoint.pt")
