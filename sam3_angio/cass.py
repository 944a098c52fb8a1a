"""The CASS coronary segment table (one place) and the SYNTAX-to-CASS map used for ARCADE.

CASS: the 29-segment numbering of the Coronary Artery Surgery Study (CASS Principal Investigators,
Circulation 1981;63(6 Pt 2):I-1-81; the segment map as used by BARI). SYNTAX: the 16-segment (+ letters)
AHA-derived numbering of the SYNTAX score (Sianos et al., EuroIntervention 2005;1:219-227), which the
ARCADE data set (Popov et al., Sci Data 2024) uses for its category names.

Category names here are the text prompts SAM3 sees: keep them human ("proximal RCA").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class CassSegment:
    id: int  # CASS segment number; also the COCO category id
    name: str  # the text prompt
    vessel: str  # RCA | LM | LAD | LCX | Ramus
    short: str  # compact label for plots


# The full CASS numbering. Ids are the study's; names are written for a text encoder.
CASS_SEGMENTS: Tuple[CassSegment, ...] = (
    CassSegment(1, "proximal RCA", "RCA", "pRCA"),
    CassSegment(2, "mid RCA", "RCA", "mRCA"),
    CassSegment(3, "distal RCA", "RCA", "dRCA"),
    CassSegment(4, "right posterior descending artery", "RCA", "rPDA"),
    CassSegment(5, "right posterior atrioventricular branch", "RCA", "rPAV"),
    CassSegment(6, "first right posterolateral branch", "RCA", "RPL1"),
    CassSegment(7, "second right posterolateral branch", "RCA", "RPL2"),
    CassSegment(8, "third right posterolateral branch", "RCA", "RPL3"),
    CassSegment(9, "inferior septal branch", "RCA", "IS"),
    CassSegment(10, "acute marginal branch", "RCA", "AM"),
    CassSegment(11, "left main", "LM", "LM"),
    CassSegment(12, "proximal LAD", "LAD", "pLAD"),
    CassSegment(13, "mid LAD", "LAD", "mLAD"),
    CassSegment(14, "distal LAD", "LAD", "dLAD"),
    CassSegment(15, "first diagonal", "LAD", "D1"),
    CassSegment(16, "second diagonal", "LAD", "D2"),
    CassSegment(17, "LAD septal perforator", "LAD", "SP"),
    CassSegment(18, "proximal LCX", "LCX", "pLCX"),
    CassSegment(19, "mid/distal LCX", "LCX", "dLCX"),
    CassSegment(20, "first obtuse marginal", "LCX", "OM1"),
    CassSegment(21, "second obtuse marginal", "LCX", "OM2"),
    CassSegment(22, "third obtuse marginal", "LCX", "OM3"),
    CassSegment(23, "LCX atrioventricular groove continuation", "LCX", "LAV"),
    CassSegment(24, "first left posterolateral branch", "LCX", "LPL1"),
    CassSegment(25, "second left posterolateral branch", "LCX", "LPL2"),
    CassSegment(26, "third left posterolateral branch", "LCX", "LPL3"),
    CassSegment(27, "left posterior descending artery", "LCX", "lPDA"),
    CassSegment(28, "ramus intermedius", "Ramus", "RI"),
    CassSegment(29, "third diagonal", "LAD", "D3"),
)

CASS_BY_ID: Dict[int, CassSegment] = {s.id: s for s in CASS_SEGMENTS}

# The default 14-class set of the study, with its sample counts (748 samples, heavily imbalanced:
# the CASS cross-entropy takes class weights from these by default).
DEFAULT_CLASS_IDS: Tuple[int, ...] = (1, 2, 3, 4, 12, 13, 14, 15, 16, 18, 19, 20, 21, 28)
STUDY_COUNTS: Dict[int, int] = {
    1: 42, 2: 126, 3: 28, 4: 38, 12: 87, 13: 192, 14: 19,
    15: 55, 16: 13, 18: 26, 19: 65, 20: 29, 21: 14, 28: 14,
}

# The study's `vessel_pattern` column (e.g. MID_LAD) -> CASS id.
VESSEL_PATTERN_TO_CASS: Dict[str, int] = {
    "PROX_RCA": 1, "MID_RCA": 2, "DIST_RCA": 3, "PDA": 4,
    "LM": 11,
    "PROX_LAD": 12, "MID_LAD": 13, "DIST_LAD": 14, "D1": 15, "D2": 16,
    "PROX_LCX": 18, "MID_LCX": 19, "DIST_LCX": 19, "OM1": 20, "OM2": 21,
    "RAMUS": 28,
}

# SYNTAX segment label (ARCADE category name) -> CASS id; None = no CASS counterpart.
# Reasoning, segment by segment (SYNTAX definitions vs the CASS map):
SYNTAX_TO_CASS: Dict[str, Optional[int]] = {
    "1": 1,  # RCA proximal: ostium to half the distance to the acute margin = CASS 1
    "2": 2,  # RCA mid: to the acute margin = CASS 2
    "3": 3,  # RCA distal: acute margin to the crux = CASS 3
    "4": 4,  # right PDA = CASS 4
    "5": 11,  # left main = CASS 11
    "6": 12,  # LAD proximal (to the first major septal) = CASS 12
    "7": 13,  # LAD mid (to the second diagonal / half way to the apex) = CASS 13
    "8": 14,  # LAD apical = CASS distal LAD 14
    "9": 15,  # first diagonal = CASS 15
    "9a": 15,  # first diagonal a: a branch of the first diagonal system; CASS does not split it
    "10": 16,  # second diagonal = CASS 16
    "10a": 16,  # second diagonal a: same reasoning as 9a
    "11": 18,  # proximal circumflex = CASS 18
    "12": 28,  # intermediate / anterolateral (ramus) = CASS 28
    "12a": 20,  # obtuse marginal a = first OM, CASS 20
    "12b": 21,  # obtuse marginal b = second OM, CASS 21
    "13": 19,  # distal circumflex = CASS mid/distal LCX 19
    "14": 24,  # left posterolateral = CASS 24
    "14a": 24,  # left posterolateral a: first left posterolateral branch
    "14b": 25,  # left posterolateral b = second left posterolateral, CASS 25
    "15": 27,  # posterior descending from the left (left dominance) = CASS 27
    "16": 6,  # posterolateral from RCA = first right posterolateral, CASS 6
    "16a": 6,  # posterolateral branch a
    "16b": 7,  # posterolateral branch b = second right posterolateral
    "16c": 8,  # posterolateral branch c = third right posterolateral
}


def cass_name(cass_id: int) -> str:
    try:
        return CASS_BY_ID[int(cass_id)].name
    except KeyError:
        raise KeyError(
            f"unknown CASS segment id {cass_id!r}: CASS numbers run 1..29 "
            f"(see sam3_angio.cass.CASS_SEGMENTS)"
        ) from None


def class_ids(ids: Optional[Sequence[int]] = None) -> List[int]:
    """The configured class set (default: the study's 14), validated against the CASS table."""
    ids = list(DEFAULT_CLASS_IDS if ids is None else ids)
    for i in ids:
        cass_name(i)
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate CASS ids in class set {ids}")
    return ids


def coco_categories(ids: Optional[Sequence[int]] = None) -> List[dict]:
    """COCO category records: id = CASS number, name = text prompt."""
    return [
        {"id": i, "name": CASS_BY_ID[i].name, "supercategory": CASS_BY_ID[i].vessel}
        for i in class_ids(ids)
    ]


def inverse_frequency_weights(
    ids: Optional[Sequence[int]] = None, counts: Optional[Dict[int, int]] = None
) -> List[float]:
    """Class weights ``w_c = N / (K * n_c)`` over the K classes ``ids``, from the study counts by default.

    scikit-learn's ``compute_class_weight("balanced")`` gives ``N / (K' n_c)`` over the K' classes that
    have samples (it refuses a class without any); its weights are scaled by ``K' / K`` to count every
    class of the set. A class with no samples gets the largest weight seen (the rarest class's), so a
    class absent from the counts is still learnt rather than ignored; no samples at all -> all 1.
    """
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight  # slow to import; only needed here

    ids = class_ids(ids)
    counts = STUDY_COUNTS if counts is None else counts
    n = {i: max(0, int(counts.get(i, 0))) for i in ids}
    present = [i for i in ids if n[i] > 0]
    if not present:
        return [1.0] * len(ids)
    w = compute_class_weight(
        "balanced", classes=np.array(present), y=np.array(present), sample_weight=[n[i] for i in present]
    ) * (len(present) / len(ids))
    by_id = dict(zip(present, w.tolist()))
    wmax = max(by_id.values())
    return [by_id.get(i, wmax) for i in ids]
