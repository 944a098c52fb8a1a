"""Catalogues of sam3-angio components (datasets, transforms, losses, models, initialisers, evaluators).

Components announce themselves where they are defined (``@TRANSFORMS.register()``); installed plugin
packages add theirs through the ``sam3_angio.plugins`` entry-point group. YAML still names classes by
Hydra ``_target_`` paths: the registry is what lists, documents and validates them (``tools/train.py
--list`` / ``--check``), so a typo in a config fails in a second instead of after a SLURM queue.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib import metadata
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from fvcore.common.registry import Registry as _FvcoreRegistry

log = logging.getLogger(__name__)

PLUGIN_GROUP = "sam3_angio.plugins"

# Our own modules that register components at import time. Kept as a list of module names (not
# imports) so that importing the registry stays cheap and cycle-free.
_BUILTIN_MODULES = (
    "sam3_angio.cpu_compat",
    "sam3_angio.model.tiny",
    "sam3_angio.model.builders",
    "sam3_angio.model.view_encoder",
    "sam3_angio.model.film",
    "sam3_angio.model.cass_head",
    "sam3_angio.model.view_conditioned",
    "sam3_angio.model.init",
    "sam3_angio.losses",
    "sam3_angio.data",
    "sam3_angio.data.dataset",
    "sam3_angio.transforms",
    "sam3_angio.evaluation",
    "sam3_angio.training",
)


class Registry(_FvcoreRegistry):
    """fvcore's registry plus what a catalogue needs: the ``_target_`` path of every entry, a
    one-line summary for ``--list``, and did-you-mean suggestions."""

    def __init__(self, name: str, description: str = "") -> None:
        super().__init__(name)
        self.description = description

    def get(self, name: str) -> Callable:  # noqa: D401 - same contract as fvcore
        obj = self._obj_map.get(name)
        if obj is None:
            hint = self.suggest(name)
            extra = f" Did you mean {hint!r}?" if hint else ""
            raise KeyError(
                f"No component named {name!r} in the {self._name!r} registry.{extra} "
                f"Known: {', '.join(sorted(self._obj_map)) or '(none)'}"
            )
        return obj

    def targets(self) -> Dict[str, str]:
        """``{target path: registered name}`` for every entry."""
        return {target_path(obj): name for name, obj in self._obj_map.items()}

    def suggest(self, name: str) -> Optional[str]:
        candidates = list(self._obj_map) + list(self.targets())
        match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
        return match[0] if match else None

    def summaries(self) -> List[Tuple[str, str, str]]:
        """``(name, target path, first docstring line)`` sorted by name."""
        rows = []
        for name, obj in sorted(self._obj_map.items()):
            doc = (obj.__doc__ or "").strip().splitlines()
            rows.append((name, target_path(obj), doc[0] if doc else ""))
        return rows


def target_path(obj: Callable) -> str:
    """The Hydra ``_target_`` string that names ``obj``."""
    return f"{obj.__module__}.{obj.__qualname__}"


DATASETS = Registry("datasets", "datasets and data loaders")
TRANSFORMS = Registry("transforms", "transforms usable inside SAM3's ComposeAPI pipelines")
LOSSES = Registry("losses", "loss functions and loss wrappers")
MODELS = Registry("models", "model builders and wrappers")
INITIALIZERS = Registry("initializers", "checkpoint initialisers (model_weight_initializer targets)")
EVALUATORS = Registry("evaluators", "metrics and meters")

ALL: Dict[str, Registry] = {
    r._name: r for r in (DATASETS, TRANSFORMS, LOSSES, MODELS, INITIALIZERS, EVALUATORS)
}

_loaded = False


def load_all(plugins: bool = True) -> None:
    """Import our component modules and every installed plugin so the catalogues are complete.

    A plugin is an entry point in the ``sam3_angio.plugins`` group pointing at a module (imported for
    its ``@REGISTRY.register()`` side effects) or at a callable (called with no argument).
    """
    global _loaded
    if _loaded:
        return
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            # A module listed here but not (yet) present must not break the catalogue of the rest.
            if e.name != mod:
                raise
            log.debug("registry: builtin module %s not present", mod)
    if plugins:
        for ep in _entry_points():
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(importlib)):
                    obj()
            except Exception as e:  # a broken plugin is reported, not fatal
                log.warning("registry: plugin %s (%s) failed to load: %s", ep.name, ep.value, e)
    _loaded = True


def _entry_points():
    try:
        return list(metadata.entry_points(group=PLUGIN_GROUP))
    except TypeError:  # Python < 3.10 API
        return list(metadata.entry_points().get(PLUGIN_GROUP, []))


def iter_registries() -> Iterator[Registry]:
    load_all()
    return iter(ALL.values())


def all_targets() -> Dict[str, str]:
    """``{target path: "registry/name"}`` across every registry."""
    load_all()
    out = {}
    for reg in ALL.values():
        for path, name in reg.targets().items():
            out[path] = f"{reg._name}/{name}"
    return out


def suggest_target(bad: str) -> Optional[str]:
    """The closest registered ``_target_`` path to a misspelt one, if any is close."""
    load_all()
    known = list(all_targets())
    match = difflib.get_close_matches(bad, known, n=1, cutoff=0.75)
    if match:
        return match[0]
    # Compare the last component too: 'ViewConditionedSam' vs '...ViewConditionedSam3'.
    tails = {k.rsplit(".", 1)[-1]: k for k in known}
    match = difflib.get_close_matches(bad.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.75)
    return tails[match[0]] if match else None
