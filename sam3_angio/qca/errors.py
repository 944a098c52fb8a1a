"""User-facing errors of the QCA tools: a mask or input file that cannot be measured.

Each message names the file (or record), what was expected, what was found and how to fix it; the
command line prints it as one ``error:`` line and exits 2.
"""

from __future__ import annotations

from ..errors import DataError


class QCAInputError(DataError):
    """An input to QCA (mask, image, COCO or predictions file, spacing, ostium) that cannot be used."""


class EmptyMaskError(QCAInputError):
    """The mask has no foreground pixel."""


class NonBinaryMaskError(QCAInputError):
    """The mask has more than two distinct values (a soft or label map, not a binary mask)."""


class SpacingError(QCAInputError):
    """The pixel spacing (mm per pixel) is not a positive finite number."""
