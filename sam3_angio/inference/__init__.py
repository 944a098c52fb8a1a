"""Inference: a trained run and a new angiogram in, named coronary segments out.

``Predictor`` (config + checkpoint -> model; frames -> named segments), ``predict_instances`` (model
outputs -> named instances, shared with validation and evaluation), the naming rule (``naming``) and the
raw-frame path into the validation pipeline (``frames``). The names load on first use (PEP 562), so
importing one light submodule does not import sam3.
"""

from __future__ import annotations

from sam3_angio.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "NAMING_RULES": "naming:RULES",
    "predict_instances": "postprocess",
    "Predictor": "predictor",
    "as_view": "predictor",
})
