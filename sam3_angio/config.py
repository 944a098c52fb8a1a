"""Composing and resolving a run's config: Hydra composition from a path or a name, then the
decisions made once before anything expensive starts (model size, accelerator, absolute paths).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from sam3_angio.errors import ConfigError


def configs_root() -> Path:
    """The folder holding ``angiography/*.yaml`` (``$SAM3_ANGIO_CONFIG_DIR`` or the repo's ``configs/``)."""
    env = os.environ.get("SAM3_ANGIO_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    return (Path(__file__).resolve().parents[1] / "configs").resolve()


def locate_config(config: str) -> Tuple[Path, str]:
    """``(config_dir, config_name)`` for a path (``configs/angiography/cass.yaml``) or a name
    (``cass``, ``angiography/cass``)."""
    root = configs_root()
    p = Path(config)
    candidates: List[Path] = []
    if p.suffix in (".yaml", ".yml"):
        candidates.append(p if p.is_absolute() else Path.cwd() / p)
        candidates.append(root.parent / p)  # a repo-relative path used from another folder
    else:
        for sub in ("", "angiography"):
            candidates.append(root / sub / f"{config}.yaml")
    for c in candidates:
        if c.is_file():
            c = c.resolve()
            try:
                rel = c.relative_to(root)
                return root, str(rel.with_suffix(""))
            except ValueError:
                return c.parent, c.stem
    known = sorted(str(q.relative_to(root).with_suffix("")) for q in root.glob("angiography/*.yaml"))
    raise ConfigError(
        f"config {config!r} not found (looked for {', '.join(str(c) for c in candidates)}). "
        f"Known configs: {', '.join(known)}"
    )


def compose(config: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose a config with Hydra (``defaults:`` lists) and apply command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    register_resolvers()
    config_dir, name = locate_config(config)
    check_config_file(config_dir / f"{name}.yaml")

    def _compose(ovr):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.2"):
                return hydra_compose(config_name=name, overrides=list(ovr))
        finally:
            GlobalHydra.instance().clear()

    for override in overrides:  # Hydra's own answer to '=3' is a ValueError traceback from its defaults list
        prefix, key = _override_key(override)
        if not key or ("=" not in override and not prefix.startswith("~")):
            raise ConfigError(f"override {override.strip()!r} is not key=value (e.g. trainer.max_epochs=3; "
                              f"+key=value adds a key, ~key removes one)")
    try:
        cfg = _compose(overrides)
    except (HydraException, OmegaConfBaseException, yaml.YAMLError, ValueError) as e:
        base = _try_compose(_compose, [o for o in overrides if not o.lstrip().startswith(("+", "~"))])
        if base is None:
            base = _try_compose(_compose, [])
        if base is not None:
            check_override_keys(base, overrides, config)
        # one line: Hydra's parse errors span three (the error, the grammar's words, a link)
        why = "; ".join(ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.startswith("See https"))
        raise ConfigError(f"cannot compose config {config!r} with overrides {list(overrides)}: {why} "
                          f"(override grammar: https://hydra.cc/docs/1.2/advanced/override_grammar/basic)") from None
    added = [o for o in overrides if o.lstrip().startswith("+")]
    if added:
        base = _try_compose(_compose, [o for o in overrides if o not in added])
        if base is not None:
            check_override_keys(base, overrides, config, target=OmegaConf.select(cfg, "trainer._target_"))
    with open_dict(cfg):
        cfg.config_source = str(config_dir / f"{name}.yaml")
    return cfg


def check_config_file(path: Path) -> None:
    """The config file is a YAML mapping: an empty, unparsable or non-mapping file (a damaged
    ``config_resolved.yaml`` beside a checkpoint) is one line naming it and where, not a YAML traceback
    or an error about an override the tool added."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {e.start}): is it a config file?") from None
    except OSError as e:
        raise ConfigError(f"config {path} cannot be read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [""])[0]
        raise ConfigError(f"config {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"config {path} is empty: a run's config_resolved.yaml is written by tools/train.py; "
                          f"pass the run's config with -c")
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} holds a {type(data).__name__} at its top level, expected a mapping of "
                          f"keys (data:, model:, trainer:, ...)")


def _try_compose(fn, overrides):
    try:
        return fn(overrides)
    except Exception:
        return None


#: Mappings whose every entry is read (a new loss term, learning-rate group, meter): `+` may add to them.
OPEN_MAPPINGS = ("scratch.loss_terms", "scratch.lr_groups", "trainer.meters", "trainer.loss",
                 "trainer.env_variables", "hydra")
#: SAM3 Trainer arguments that are read as dataclasses: `+trainer.<arg>.<field>` must be one of their fields.
_TRAINER_CONFS = {"checkpoint": "CheckpointConf", "logging": "LoggingConf", "distributed": "DistributedConf",
                  "cuda": "CudaConf", "optim": "OptimConf"}


def _flat_keys(node, prefix: str = "") -> List[str]:
    out: List[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.append(key)
            out.extend(_flat_keys(v, key))
    return out


def _override_key(override: str) -> Tuple[str, str]:
    """``('+', 'scratch.x')`` for ``+scratch.x=1``; ``('', 'a.b')`` for ``a.b=1``."""
    text = override.strip()
    prefix = text[: len(text) - len(text.lstrip("+~"))]
    return prefix, text[len(prefix):].split("=", 1)[0].strip()


def _trainer_reads(key: str, target: Optional[str]) -> bool:
    """Whether SAM3's Trainer (or ``target``, its subclass) takes ``trainer.<arg>[.<field>]``."""
    import dataclasses
    import importlib
    import inspect

    parts = key.split(".")[1:]
    if not parts:
        return False
    try:
        module, _, cls_name = (target or "sam3.train.trainer.Trainer").rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        params = set()
        for klass in inspect.getmro(cls):
            if "__init__" in vars(klass):
                params |= set(inspect.signature(klass.__init__).parameters)
        if parts[0] not in params:
            return False
        if len(parts) == 1:
            return True
        conf = _TRAINER_CONFS.get(parts[0])
        if conf is None or len(parts) > 2:
            return False
        fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module("sam3.train.trainer"), conf))}
        return parts[1] in fields
    except Exception:
        return False


def check_override_keys(base: DictConfig, overrides: Sequence[str], config: str = "",
                        target: Optional[str] = None) -> None:
    """Every override names a key something reads: an unknown key (``trainer.max_epoch=1``) or a new
    one added with ``+`` that nothing reads (``+scratch.train_batchsize=1``) is a ConfigError with a
    did-you-mean over the config's keys. ``+`` may add entries to :data:`OPEN_MAPPINGS` and SAM3
    Trainer arguments that the config leaves at their defaults."""
    import difflib

    known = _flat_keys(OmegaConf.to_container(base, resolve=False))
    known_set = set(known)
    for override in overrides:
        prefix, key = _override_key(override)
        if not key or key in known_set or prefix.startswith("~"):
            continue
        if any(key.startswith(m + ".") for m in OPEN_MAPPINGS):
            continue
        if prefix.startswith("+") and key.startswith("trainer.") and _trainer_reads(key, target):
            continue
        parent, _, leaf = key.rpartition(".")
        siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
        close = [f"{parent}.{m}" if parent else m for m in difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.75)]
        close = close or difflib.get_close_matches(key, known, n=1, cutoff=0.85)
        hint = f"; did you mean {close[0]}?" if close else ""
        what = "adds a key that nothing reads" if prefix.startswith("+") else "names a key the config does not have"
        raise ConfigError(f"override {override.strip()!r} {what}{' in ' + repr(config) if config else ''}{hint}"
                          f"{'' if close else ' (python tools/train.py -c CONFIG --print-config lists the keys)'}")


def register_resolvers() -> None:
    """SAM3's resolvers (``times``, ``add``, ...), which its configs and ours use."""
    from sam3.train.utils.train_utils import register_omegaconf_resolvers

    try:
        register_omegaconf_resolvers()
    except Exception:  # already registered in this process
        pass
    if not OmegaConf.has_resolver("angio.values"):
        # A mapping's values as a list, in order: lets configs compose list-valued options
        # (learning-rate groups) by adding keys instead of copying whole lists.
        OmegaConf.register_new_resolver("angio.values", _values)
    if not OmegaConf.has_resolver("angio.if_in"):
        # ${angio.if_in:ITEM,LIST,A,B}: A when ITEM is in LIST, else B (e.g. the prompt encoder's
        # learning-rate group only when training.modes has proofread).
        OmegaConf.register_new_resolver("angio.if_in", _if_in)


def _if_in(item, container, then, otherwise):
    items = OmegaConf.to_container(container, resolve=True) if OmegaConf.is_config(container) else container
    chosen = then if item in list(items or []) else otherwise
    return OmegaConf.to_container(chosen, resolve=True) if OmegaConf.is_config(chosen) else chosen


def _values(d):
    # Resolved here, while `d` is still attached to the root: the returned list is a new node.
    if d is None:
        return []
    return list(OmegaConf.to_container(d, resolve=True).values())


def resolve_accelerator(requested: str, cuda: Optional[bool] = None, where: str = "here") -> str:
    """``auto`` -> cuda/cpu. ``cuda`` says whether the machine that will run has CUDA (default: this one)."""
    local = cuda is None
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if requested == "auto":
        return "cuda" if cuda else "cpu"
    if requested == "cuda" and not cuda and local:
        raise ConfigError(
            f"trainer.accelerator=cuda but no CUDA device is visible {where}; use trainer.accelerator=auto or cpu"
        )
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"trainer.accelerator={requested!r}: expected auto, cpu or cuda")
    return requested


def _abs(path: Optional[str], base: Path) -> Optional[str]:
    if path in (None, "", "null"):
        return None
    p = Path(os.path.expanduser(str(path)))
    return str(p if p.is_absolute() else (base / p).resolve())


def finalize(cfg: DictConfig, base_dir: Optional[Path] = None) -> DictConfig:
    """Make the run's decisions once: model size (``auto``), accelerator, absolute paths.

    Done in the launching process, so every rank and every SLURM task sees the same values.
    """
    from sam3_angio.model.builders import ModelChoiceError, resolve_model_name

    require_run_keys(cfg)
    base = Path(base_dir or Path.cwd())
    with open_dict(cfg):
        for key in ("demo_data_root", "data_root", "experiment_dir", "sam3_checkpoint", "phase1_checkpoint"):
            if key in cfg.paths:
                cfg.paths[key] = _abs(OmegaConf.select(cfg, f"paths.{key}"), base)
        # Where the run will execute decides cuda vs cpu: this machine, or - for a SLURM submission from
        # a login node without GPUs - the partition (submitit.cpu_only, when set).
        cuda = None
        if OmegaConf.select(cfg, "submitit.use_cluster"):
            cpu_only = OmegaConf.select(cfg, "submitit.cpu_only")
            if cpu_only is not None:
                cuda = not bool(cpu_only)
            elif cfg.trainer.accelerator == "cuda":
                cuda = True
        try:
            cfg.model.resolved = resolve_model_name(cfg.model.name, cfg.paths.sam3_checkpoint, cuda=cuda)
        except ModelChoiceError as e:
            raise ConfigError(str(e)) from None
    return set_accelerator(cfg, resolve_accelerator(cfg.trainer.accelerator, cuda))


#: What every run config has (the phase configs get them from their ``defaults:`` list of base/ files).
RUN_KEYS = ("experiment_name", "data.task", "model.name", "paths.data_root", "paths.experiment_dir",
            "trainer._target_", "trainer.accelerator")


def require_run_keys(cfg: DictConfig) -> None:
    """A config given with ``-c`` is a run config: a base fragment (``base/paths.yaml``) or a hand-written
    file without a key the tools read was an OmegaConf traceback from ``finalize``."""
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    source = OmegaConf.select(cfg, "config_source") or "the config"
    for key in RUN_KEYS:
        try:
            value = OmegaConf.select(cfg, key, throw_on_missing=True)
            problem = f"it has no {key}" if value is None else None
        except MissingMandatoryValue:
            problem = f"it leaves {key} unset (???)"
        except OmegaConfBaseException as e:
            problem = f"{key} does not resolve ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})"
        if problem:
            raise ConfigError(
                f"config {source} is not a run config: {problem}. Pass a phase config "
                f"(configs/angiography/vessel_segmentation.yaml, cass.yaml, stenosis.yaml, study.yaml) or one whose "
                f"defaults list includes the base/ files")


def set_accelerator(cfg: DictConfig, accelerator: str) -> DictConfig:
    """The one place that sets ``trainer.accelerator`` and what follows from it: bfloat16 autocast
    (``trainer.optim.amp``) is CUDA's, so it is off on a CPU."""
    with open_dict(cfg):
        if OmegaConf.select(cfg, "trainer.accelerator") is not None:
            cfg.trainer.accelerator = accelerator
        if accelerator == "cpu" and OmegaConf.select(cfg, "trainer.optim.amp.enabled"):
            cfg.trainer.optim.amp.enabled = False
    return cfg

