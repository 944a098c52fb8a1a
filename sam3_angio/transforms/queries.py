"""Fewer text queries per training frame: a CASS frame carries one query per CASS category (14), and
SAM3 runs its fusion encoder, decoder and mask decoding once per (frame, query), so a CASS step costs
many phase 1 steps. ``SamplePhrases`` keeps at most ``max_phrases`` of a frame's queries for one step -
positives (categories present in the frame) and negatives (absent ones) in a set proportion - and a new
draw each time the frame is loaded, so over an epoch every category is still taught present and absent.

Why not SAM3's ``KeepMaxNumFindQueries(retain_positive_queries=True)``: when a frame has at least
``max`` positives it drops every negative, and an angiogram shows 4-10 segments, so with a small cap a
CASS model would never be taught that a segment is absent. Validation and inference keep every query.
"""

from __future__ import annotations

import random
from typing import List, Optional

from sam3.train.transforms.filter_query_transforms import FilterDataPointQueries

from sam3_angio.errors import ConfigError
from sam3_angio.registry import TRANSFORMS


@TRANSFORMS.register()
class SamplePhrases(FilterDataPointQueries):
    """A query filter for SAM3's ``FlexibleFilterFindGetQueries``: keep at most ``max_phrases`` queries
    of a frame (``None``: all, the filter does nothing). Of them about ``negative_fraction`` are negatives
    (at least one when the frame has any and the cap is 2 or more), the rest positives; when one kind
    runs short the other fills the slots. Positives and negatives are drawn uniformly."""

    def __init__(self, max_phrases: Optional[int] = None, negative_fraction: float = 0.25):
        if max_phrases is not None and (isinstance(max_phrases, bool) or not isinstance(max_phrases, int)
                                        or max_phrases < 1):
            raise ConfigError(f"data.max_phrases_per_frame must be a positive integer or null, got {max_phrases!r}")
        if not 0.0 <= float(negative_fraction) <= 1.0:
            raise ConfigError(f"data.negative_phrase_fraction must be in [0, 1], got {negative_fraction!r}")
        self.max_phrases = max_phrases
        self.negative_fraction = float(negative_fraction)

    def choose(self, positives: List[int], negatives: List[int]) -> List[int]:
        """The query ids to keep, from the ids of positive and negative queries."""
        k = self.max_phrases
        if k is None or len(positives) + len(negatives) <= k:
            return sorted(positives + negatives)
        n_neg = min(len(negatives), int(round(k * self.negative_fraction)))
        if negatives and k >= 2 and self.negative_fraction > 0:
            n_neg = max(n_neg, 1)
        n_pos = min(len(positives), k - n_neg)
        n_neg = min(len(negatives), k - n_pos)  # positives ran short: more negatives
        return sorted(random.sample(positives, n_pos) + random.sample(negatives, n_neg))

    def identify_queries_to_filter(self, datapoint) -> None:
        self.obj_ids_to_filter = set()
        queries = datapoint.find_queries
        positives = [i for i, q in enumerate(queries) if q.object_ids_output]
        negatives = [i for i, q in enumerate(queries) if not q.object_ids_output]
        keep = set(self.choose(positives, negatives))
        self.find_ids_to_filter = set(range(len(queries))) - keep
