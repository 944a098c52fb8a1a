"""The one exception type evaluation raises for unusable input files.

Its message names the file, what was expected, what was found and how to fix it; tools print it
without a traceback and exit non-zero.
"""

from __future__ import annotations

from sam3_angio.errors import UserError


class EvaluationInputError(UserError, ValueError):
    """A ground-truth, prediction or logits file that evaluation cannot use (the message says why)."""
