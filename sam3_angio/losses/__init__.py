"""Angiography losses: registered terms (SAM3's matcher losses with this project's recipe, the semantic
focal loss, the CASS cross-entropy, the regression heads' smooth L1) and the one loss that composes the terms a config lists."""

from sam3_angio.losses.angio_loss import STUDY_PHASE2, AngioLoss, group_factors  # noqa: F401
from sam3_angio.losses.cass_ce import CassCrossEntropy  # noqa: F401
from sam3_angio.losses.qca_regression import QCARegressionLoss  # noqa: F401
from sam3_angio.losses.terms import (  # noqa: F401
    GROUPS, BoxLoss, MaskLoss, OutputTerm, PresenceLoss, SemanticFocalLoss,
)
