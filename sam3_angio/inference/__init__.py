"""Inference: a trained run and a new angiogram in, named coronary segments out.

``Predictor`` (config + checkpoint -> model; frames -> named segments), ``predict_instances`` (model
outputs -> named instances, shared with validation and evaluation), the naming rule (``naming``) and the
raw-frame path into the validation pipeline (``frames``).
"""

from sam3_angio.inference.naming import RULES as NAMING_RULES  # noqa: F401
from sam3_angio.inference.postprocess import predict_instances  # noqa: F401
from sam3_angio.inference.predictor import Predictor, as_view  # noqa: F401
