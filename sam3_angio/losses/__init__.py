"""Angiography losses: SAM3's matcher losses with our defaults, the semantic focal loss, the CASS
cross-entropy, and one wrapper that combines them with configurable (e.g. the study's) weights."""

from sam3_angio.losses.angio_loss import AngioLoss  # noqa: F401
from sam3_angio.losses.cass_ce import CassCrossEntropy  # noqa: F401
from sam3_angio.losses.sam3_terms import PresenceLoss, SemanticFocalLoss  # noqa: F401
