"""Inference: a trained run and a new angiogram in, named coronary segments out.

``Predictor`` (config + checkpoint -> model; frames -> named segments), ``predict_instances`` (model
outputs -> named instances, shared with validation and evaluation), the naming rule (``naming``) and the
raw-frame path into the validation pipeline (``frames``). The names load on first use (PEP 562), so
importing one light submodule does not import sam3.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "NAMING_RULES": ("naming", "RULES"),
    "predict_instances": ("postprocess", "predict_instances"),
    "Predictor": ("predictor", "Predictor"),
    "as_view": ("predictor", "as_view"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
