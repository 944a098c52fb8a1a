"""Quantitative coronary analysis (phase 4): from a binary vessel or segment mask and the pixel
spacing, the centreline, diameter profile, interpolated reference diameter, MLD, % diameter stenosis,
lesion length and position (docs/qca.md).

Entry points: :func:`measure_mask` (one mask), :func:`qca_from_coco`, :func:`qca_from_predictions`.
"""

from .batch import QCAReport, qca_from_coco, qca_from_predictions
from .errors import EmptyMaskError, NonBinaryMaskError, QCAInputError, SpacingError
from .measure import QCAParams, measure_mask
from .result import LesionQCA, SegmentQCA

__all__ = [
    "EmptyMaskError", "LesionQCA", "NonBinaryMaskError", "QCAInputError", "QCAParams", "QCAReport", "SegmentQCA",
    "SpacingError", "measure_mask", "qca_from_coco", "qca_from_predictions",
]
