"""One loss for every phase: the registered terms a config lists (``scratch.loss_terms``), composed
with SAM3's matching, each logged under its own name.

    terms: {boxes: BoxLoss, presence: PresenceLoss, masks: MaskLoss, semantic: SemanticFocalLoss,
            cass_ce: CassCrossEntropy, ...}
      SAM3 matched-query terms (LossWithWeights) -> SAM3's Sam3LossWrapper (o2o + o2m matching)
      the semantic term (SemanticSegCriterion)   -> Sam3LossWrapper's semantic slot
      our output terms (OutputTerm)              -> weight x group factor x value, added to the core loss

Training modes (``training.modes``): when the model's output carries ``mode_outputs`` ({automatic,
proofread} -> SAM3Output, the passes of one step), each pass gets the whole loss, its terms are returned
as ``<mode>/<term>`` and the core loss is the mean over the passes.

``group_weights`` rescales each term by the group it declares, relative to equal weighting; the study's
phase 2 weighting is ``{segmentation: 0.3, classification: 0.5, boxes: 0.2}``.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from sam3.train.loss.loss_fns import CORE_LOSS_KEY, LossWithWeights, SemanticSegCriterion
from sam3.train.loss.sam3_loss import Sam3LossWrapper

from sam3_angio.errors import ConfigError
from sam3_angio.losses.terms import GROUPS, OutputTerm
from sam3_angio.registry import LOSSES

STUDY_PHASE2 = {"segmentation": 0.3, "classification": 0.5, "boxes": 0.2}


def group_factors(group_weights: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """Group weights -> multipliers relative to equal weighting (1/3 each -> 1.0)."""
    if not group_weights:
        return {g: 1.0 for g in GROUPS}
    unknown = set(group_weights) - set(GROUPS)
    if unknown:
        raise ConfigError(f"scratch.loss_group_weights: unknown groups {sorted(unknown)}; expected {list(GROUPS)}")
    total = sum(float(group_weights.get(g, 0.0)) for g in GROUPS)
    if total <= 0:
        raise ConfigError(f"scratch.loss_group_weights {dict(group_weights)} sum to {total}: need a positive sum")
    return {g: float(group_weights.get(g, 0.0)) * len(GROUPS) / total for g in GROUPS}


def _group_of(name: str, term: nn.Module) -> str:
    group = getattr(term, "group", None)
    if group not in GROUPS:
        raise ConfigError(f"loss term {name!r} ({type(term).__name__}) declares group {group!r}; expected one of "
                          f"{list(GROUPS)} (set a class attribute `group`)")
    return group


@LOSSES.register()
class AngioLoss(nn.Module):
    """The registered loss terms of a config, composed with SAM3's matching and group weights.

    Args:
        terms: ``{name: term}`` (or a list): SAM3 matched-query terms, at most one semantic term, and
            our ``OutputTerm`` s.
        matcher, o2m_matcher, o2m_weight: SAM3's one-to-one / one-to-many matching (``Sam3LossWrapper``).
        group_weights: e.g. the study's ``{segmentation: 0.3, classification: 0.5, boxes: 0.2}``.
        trace_dir: each training step's losses, one JSON line a step in ``loss_trace_rank<r>.jsonl``
            (compare ranks of a DDP run, or a run with its reference).
    """

    def __init__(self, terms: Union[Mapping[str, nn.Module], Sequence[nn.Module]], matcher: nn.Module,
                 o2m_matcher: Optional[nn.Module] = None, o2m_weight: float = 2.0,
                 group_weights: Optional[Mapping[str, float]] = None, trace_dir: Optional[str] = None,
                 scale_by_find_batch_size: bool = True):
        super().__init__()
        if not isinstance(terms, Mapping):
            terms = {type(t).__name__: t for t in terms}
        terms = {k: v for k, v in terms.items() if v is not None}  # a phase may switch a term off with null
        if not terms:
            raise ConfigError("scratch.loss_terms is empty: a run needs at least one loss term")
        self.factors = group_factors(group_weights)
        find, semantic, own = [], None, {}
        for name, term in terms.items():
            factor = self.factors[_group_of(name, term)]
            if isinstance(term, OutputTerm):
                own[name] = term
            elif isinstance(term, SemanticSegCriterion):
                if semantic is not None:
                    raise ConfigError(f"loss term {name!r}: a second semantic-segmentation term; SAM3 takes one")
                semantic = term
            elif isinstance(term, LossWithWeights):
                find.append(term)
            else:
                raise ConfigError(f"loss term {name!r} is a {type(term).__name__}: expected a SAM3 LossWithWeights "
                                  f"or a sam3_angio.losses.terms.OutputTerm")
            if isinstance(term, LossWithWeights):
                term.weight_dict = {k: w * factor for k, w in term.weight_dict.items()}
        self.own_terms = nn.ModuleDict(own)
        self.sam3_loss = Sam3LossWrapper(
            loss_fns_find=nn.ModuleList(find), matcher=matcher, o2m_matcher=o2m_matcher, o2m_weight=o2m_weight,
            use_o2m_matcher_on_o2m_aux=False, loss_fn_semantic_seg=semantic,
            scale_by_find_batch_size=scale_by_find_batch_size,
        )
        self.trace_dir = trace_dir
        self._trace_step = 0

    def forward(self, find_stages, find_targets) -> Dict[str, torch.Tensor]:
        modes = getattr(find_stages, "mode_outputs", None)
        if modes:
            losses: Dict[str, torch.Tensor] = {}
            core = 0.0
            for mode, stages in modes.items():
                per_mode = self.one_pass(stages, find_targets)
                core = core + per_mode.pop(CORE_LOSS_KEY)
                losses.update({f"{mode}/{k}": v for k, v in per_mode.items()})
            losses[CORE_LOSS_KEY] = core / len(modes)
        else:
            losses = self.one_pass(find_stages, find_targets)
        if self.trace_dir and torch.is_grad_enabled():
            self._trace(losses)
        return losses

    def one_pass(self, find_stages, find_targets) -> Dict[str, torch.Tensor]:
        """The loss of one forward pass: SAM3's matched terms + semantic term + our output terms."""
        losses = self.sam3_loss(find_stages, find_targets)
        if self.own_terms:
            stages = find_stages.output if hasattr(find_stages, "output") else find_stages
            last = stages[-1][-1]
            for name, term in self.own_terms.items():
                factor = term.weight * self.factors[term.group]
                for key, value in term.losses(last).items():
                    losses[key] = value
                    losses[CORE_LOSS_KEY] = losses[CORE_LOSS_KEY] + factor * value
        return losses

    def _trace(self, losses: Dict[str, torch.Tensor]) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        os.makedirs(self.trace_dir, exist_ok=True)
        row = {"step": self._trace_step, "rank": rank}
        row.update({k: float(v) for k, v in losses.items() if torch.as_tensor(v).numel() == 1})
        with open(os.path.join(self.trace_dir, f"loss_trace_rank{rank}.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        self._trace_step += 1
