"""Synthetic X-ray coronary angiograms in the study's CSV layout (3D tree -> C-arm projection -> X-ray).

Entry point: :func:`generate_dataset` (``tools/make_synthetic.py``); geometry in :mod:`.projection`.
"""

from .generator import CSV_NAME, SyntheticConfig, generate_dataset
from .projection import CArmView, carm_axes

__all__ = ["CSV_NAME", "CArmView", "SyntheticConfig", "carm_axes", "generate_dataset"]
