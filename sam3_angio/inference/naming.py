"""Naming a predicted segment: the CASS head's distribution over classes (pooled inside the predicted
mask, with the view embedding), fused with the score of the text query that found it.

For one predicted instance found by the query of class ``c`` with detection score ``s`` in [0, 1], and the
head's softmax ``h`` over the K classes:

    query:  p = onehot(c)                                     (the text query's category, SAM3 alone)
    head:   p = h                                             (the CASS head alone)
    fused:  p ∝ h ⊙ q,  q(k) = s·[k = c] + (1 - s) / K        (the query as a prior, the head as evidence)

    name = argmax p      score = s · p(name)      probabilities = p

``score`` reads as "an object is here (s) and it is this segment (p)": in ``query`` mode it is SAM3's own
score. The prior says: with probability s the query's category is right, otherwise the segment could be
any of the K classes; so q(c) >= q(k) always, and a head that knows nothing (uniform) leaves the query's
name. A confident query (s near 1) keeps its name unless the head is confident too; an unsure one is
renamed by the head. Fusing by product assumes the two are independent evidence (the query sees the
phrase, the head sees position and view); ``head`` and ``query`` are there to measure that.
"""

from __future__ import annotations

from typing import Optional

import torch

from sam3_angio.errors import ConfigError

RULES = ("query", "head", "fused")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ConfigError(f"naming rule {rule!r}: expected one of {', '.join(RULES)} (see sam3_angio/inference/naming.py)")
    return rule


def name_probabilities(rule: str, query_class: torch.Tensor, score: torch.Tensor,
                       head_probs: Optional[torch.Tensor], num_classes: int) -> torch.Tensor:
    """p (M, K) for M instances: ``query_class`` (M,) class index of the query that found each (-1: a
    category outside the head's classes), ``score`` (M,) detection scores, ``head_probs`` (M, K) or None."""
    check_rule(rule)
    m = query_class.shape[0]
    onehot = torch.zeros(m, num_classes, dtype=torch.float32, device=score.device)
    inside = query_class >= 0
    onehot[inside.nonzero().flatten(), query_class[inside]] = 1.0
    if rule == "query" or head_probs is None:
        return onehot
    head_probs = head_probs.float()
    if rule == "head":
        return head_probs
    s = score.float().clamp(0.0, 1.0)[:, None]
    prior = s * onehot + (1 - s) / num_classes
    prior = torch.where(inside[:, None], prior, torch.ones_like(prior))  # no query prior outside the classes
    fused = head_probs * prior
    return fused / fused.sum(dim=1, keepdim=True).clamp_min(1e-12)
