"""sam3_angio.data: the study's CSV layout, synthetic angiograms, COCO conversion, ARCADE import.

Importing this package is cheap (no torch, no sam3). Public entry points, imported on first use:
``ensure_demo_data``, ``convert_csv_to_coco``, ``import_arcade``, ``generate_dataset``,
``validate_csv``, ``read_frame``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ensure_demo_data": "sam3_angio.data.demo",
    "demo_paths": "sam3_angio.data.demo",
    "convert_csv_to_coco": "sam3_angio.data.coco_convert",
    "import_arcade": "sam3_angio.data.arcade",
    "generate_dataset": "sam3_angio.data.synthetic.generator",
    "validate_csv": "sam3_angio.data.layout",
    "read_frame": "sam3_angio.data.cine",
    "DataLayoutError": "sam3_angio.data.layout",
    "RowError": "sam3_angio.data.layout",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sam3_angio.data' has no attribute {name!r}")
