"""Standard angiographic views per target vessel (primary LAO+/RAO-, secondary CRA+/CAU-, degrees).

The working views that cardiologists use to open up each vessel with little overlap and
foreshortening; the generator samples one and jitters it, as real acquisitions vary around them.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

# name -> (primary, secondary)
STANDARD_VIEWS: Dict[str, Tuple[float, float]] = {
    "RAO30_CAU25": (-30.0, -25.0),  # LM, LCX, OMs
    "AP_CAU30": (0.0, -30.0),  # LM, proximal LCX
    "LAO45_CAU30": (45.0, -30.0),  # "spider": LM bifurcation, proximal LAD/LCX
    "RAO30_CRA30": (-30.0, 30.0),  # mid/distal LAD, diagonals
    "AP_CRA35": (0.0, 35.0),  # mid LAD, diagonals
    "LAO45_CRA25": (45.0, 25.0),  # LAD, diagonal take-offs
    "LAO35": (35.0, 0.0),  # RCA "C" shape
    "LAO30_CRA20": (30.0, 20.0),  # distal RCA, crux, PDA
    "RAO30": (-30.0, 0.0),  # mid RCA, PDA
    "AP_CRA25": (0.0, 25.0),  # PDA / posterolateral
}

VIEWS_FOR_VESSEL: Dict[str, List[str]] = {
    "LAD": ["RAO30_CRA30", "AP_CRA35", "LAO45_CRA25", "LAO45_CAU30"],
    "LCX": ["RAO30_CAU25", "AP_CAU30", "LAO45_CAU30"],
    "Ramus": ["RAO30_CAU25", "RAO30_CRA30", "AP_CAU30"],
    "RCA": ["LAO35", "LAO30_CRA20", "RAO30"],
    "PDA": ["LAO30_CRA20", "RAO30", "AP_CRA25"],
}

# Which coronary injection fills a vessel (left: left main system; right: RCA system).
INJECTION_SIDE: Dict[str, str] = {"LAD": "left", "LCX": "left", "Ramus": "left", "RCA": "right", "PDA": "right"}


def sample_view(rng: np.random.Generator, vessel: str, jitter_deg: Tuple[float, float] = (7.0, 6.0)) -> Tuple[str, float, float]:
    """``(standard view name, primary, secondary)`` for ``vessel``, jittered around the standard."""
    name = str(rng.choice(VIEWS_FOR_VESSEL[vessel]))
    p, s = STANDARD_VIEWS[name]
    p = float(np.clip(p + rng.normal(0.0, jitter_deg[0]), -60.0, 60.0))
    s = float(np.clip(s + rng.normal(0.0, jitter_deg[1]), -45.0, 45.0))
    return name, round(p, 1), round(s, 1)
