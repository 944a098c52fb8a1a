"""Catalogues of sam3-angio components, and the builder that makes a named part from a YAML spec.

Components announce themselves where they are defined (``@VIEW_ENCODERS.register("sinusoidal")``);
installed plugin packages add theirs through the ``sam3_angio.plugins`` entry-point group. Whole
objects in YAML are still named by Hydra ``_target_`` paths (SAM3's way); the parts inside our model
and loss (view encoders, CASS heads, prompt encoders, regression heads) are named by their registered
name and built here, so adding one is a new file plus a YAML line:

    model.view.encoder: sinusoidal        -> VIEW_ENCODERS.build("sinusoidal", dim=256)
    {name: region_mlp, hidden: 256}       -> HEADS.build({...}, num_classes=14, channels=256)

The catalogue fills itself by importing every module of the package (``load_all``); ``tools/train.py
--list`` prints it and ``--check`` uses it for did-you-mean on misspelt targets.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
from importlib import metadata
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from fvcore.common.registry import Registry as _FvcoreRegistry

from sam3_angio.errors import ConfigError

log = logging.getLogger(__name__)

PLUGIN_GROUP = "sam3_angio.plugins"
PACKAGE = "sam3_angio"


class Registry(_FvcoreRegistry):
    """fvcore's registry plus what a catalogue needs: registration under a chosen name, a builder from
    a YAML spec, a one-line summary per entry for ``--list``, and did-you-mean suggestions."""

    def __init__(self, name: str, description: str = "") -> None:
        super().__init__(name)
        self.description = description

    def register(self, obj: Any = None, name: Optional[str] = None) -> Any:
        """``@REG.register()`` (under the object's own name), ``@REG.register("short")`` or
        ``REG.register(obj, name=...)``."""
        if isinstance(obj, str):  # @REG.register("name")
            obj, name = None, obj
        if obj is None:
            def deco(func_or_class: Any) -> Any:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Callable:  # noqa: D401 - same contract as fvcore
        obj = self._obj_map.get(name)
        if obj is None and not _loaded:
            load_all()  # a plugin's part, named in YAML before anything imported it
            obj = self._obj_map.get(name)
        if obj is None:
            hint = self.suggest(name)
            extra = f" Did you mean {hint!r}?" if hint else ""
            raise ConfigError(
                f"no component named {name!r} in the {self._name} registry ({self.description}).{extra} "
                f"Known: {', '.join(sorted(self._obj_map)) or '(none)'}"
            )
        return obj

    def build(self, spec: Union[str, Mapping[str, Any]], **kwargs: Any) -> Any:
        """Make the part ``spec`` names: a registered name, or ``{name: ..., <its arguments>}``.
        ``kwargs`` are what the caller knows (channels, class count) and the spec must not repeat."""
        if isinstance(spec, str):
            name, args = spec, {}
        elif isinstance(spec, Mapping) and "name" in spec:
            args = {k: v for k, v in spec.items() if k != "name"}
            name = spec["name"]
        else:
            raise ConfigError(f"{self._name}: expected a registered name or {{name: ..., arguments}}, got {spec!r}")
        clash = set(args) & set(kwargs)
        if clash:
            raise ConfigError(f"{self._name} {name!r}: {sorted(clash)} are set by the model, not in YAML")
        try:
            return self.get(name)(**args, **kwargs)
        except TypeError as e:
            raise ConfigError(f"{self._name} {name!r} cannot be built with {sorted(args)}: {e}") from None

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


DATASETS = Registry("datasets", "datasets, loaders and collate functions")
TRANSFORMS = Registry("transforms", "transforms usable inside SAM3's ComposeAPI pipelines")
LOSSES = Registry("losses", "loss terms and the loss that composes them")
MODELS = Registry("models", "model builders and wrappers")
VIEW_ENCODERS = Registry("view_encoders", "C-arm angles -> view embedding (model.view.encoder)")
HEADS = Registry("heads", "heads on region-pooled features: CASS naming, regression (model.*_head)")
PROMPT_ENCODERS = Registry("prompt_encoders", "clicks / boxes -> feature-map prompts (proofread mode)")
INITIALIZERS = Registry("initializers", "checkpoint initialisers (model_weight_initializer targets)")
EVALUATORS = Registry("evaluators", "metrics and meters")

ALL: Dict[str, Registry] = {
    r._name: r
    for r in (DATASETS, TRANSFORMS, LOSSES, MODELS, VIEW_ENCODERS, HEADS, PROMPT_ENCODERS, INITIALIZERS,
              EVALUATORS)
}

_loaded = False


def package_modules() -> List[str]:
    """Every module of the package (found by walking it: nothing to keep up to date by hand)."""
    pkg = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{PACKAGE}.")
                  if not m.name.endswith("__main__"))


def load_all(plugins: bool = True) -> None:
    """Import every module of the package and every installed plugin, so the catalogues are complete.

    A plugin is an entry point in the ``sam3_angio.plugins`` group pointing at a module (imported for
    its ``@REGISTRY.register()`` side effects) or at a callable (called with no argument). A broken
    plugin is reported, not fatal; a broken module of ours is a bug and raises.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in package_modules():
        importlib.import_module(mod)
    if plugins:
        for ep in _entry_points():
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, type(importlib)):
                    obj()
            except Exception as e:
                log.warning("registry: plugin %s (%s) failed to load: %s", ep.name, ep.value, e)


def _entry_points():
    return list(metadata.entry_points(group=PLUGIN_GROUP))


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
    known = list(all_targets())
    match = difflib.get_close_matches(bad, known, n=1, cutoff=0.75)
    if match:
        return match[0]
    # Compare the last component too: 'ViewConditionedSam' vs '...ViewConditionedSam3'.
    tails = {k.rsplit(".", 1)[-1]: k for k in known}
    match = difflib.get_close_matches(bad.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.75)
    return tails[match[0]] if match else None
