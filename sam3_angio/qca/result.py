"""What QCA returns for one segment: :class:`SegmentQCA` with its :class:`LesionQCA` list, in mm when
the pixel spacing is known and in pixels otherwise (keys end in ``_mm`` or ``_px`` accordingly).

Profiles are kept as arrays (for figures and callers); ``to_dict()`` gives the JSON record of
``qca.json`` (docs/qca.md lists every key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def _r(v: Optional[float], nd: int = 3) -> Optional[float]:
    if v is None or not np.isfinite(v):
        return None
    return round(float(v), nd)


@dataclass
class LesionQCA:
    percent_diameter_stenosis: float
    mld: float  # in `units`
    reference_diameter: float  # interpolated reference diameter at the MLD, in `units`
    lesion_length: float
    position: float  # MLD distance from the start (ostium end) of the centreline, along it
    start: float  # proximal edge, along the centreline
    end: float  # distal edge
    mld_xy: Tuple[float, float]  # (x, y) frame pixels of the MLD point
    units: str = "mm"
    index: int = 0  # profile sample of the MLD
    # "start" / "end" / "both": the lesion runs into that end of the measured vessel (no healthy vessel
    # beyond it in the mask, its reference there extrapolated); None: healthy vessel on both sides
    open_end: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        u = self.units
        return {
            "percent_diameter_stenosis": _r(self.percent_diameter_stenosis, 1),
            f"mld_{u}": _r(self.mld),
            f"reference_diameter_{u}": _r(self.reference_diameter),
            f"lesion_length_{u}": _r(self.lesion_length, 2),
            f"position_{u}": _r(self.position, 2),
            f"start_{u}": _r(self.start, 2),
            f"end_{u}": _r(self.end, 2),
            "mld_xy": [_r(self.mld_xy[0], 2), _r(self.mld_xy[1], 2)],
            "open_end": self.open_end,
        }


@dataclass
class SegmentQCA:
    """QCA of one mask. Scalars are in ``units`` (``"mm"`` with ``mm_per_pixel``, else ``"px"``);
    arrays are per centreline sample (N,), lengths in ``units``, points in frame pixels (x, y)."""

    source: str
    units: str
    mm_per_pixel: Optional[float]
    reference_diameter: float  # at the worst lesion's MLD; without lesions the mean of the reference function
    mld: float  # the segment's narrowest point relative to its reference (the worst lesion's MLD if any)
    percent_diameter_stenosis: float  # at that point
    centerline_length: float
    lesions: List[LesionQCA]
    orientation: str  # "ostium_hint" | "wider_end": how the start of the centreline was chosen
    n_side_branches: int
    flags: List[str]
    warnings: List[str]
    meta: Dict[str, Any] = field(default_factory=dict)  # frame, image_id, cass_segment, ...
    reference_fit: Dict[str, Any] = field(default_factory=dict)
    # profiles (not in to_dict unless asked)
    s: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    diameter: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # smoothed
    diameter_raw: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    reference: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    centerline_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)
    edges_xy: Tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros((0, 2)), np.zeros((0, 2))),
                                                    repr=False)
    worst_index: int = 0

    @property
    def has_lesion(self) -> bool:
        return bool(self.lesions)

    def to_dict(self, profile: bool = False) -> Dict[str, Any]:
        u = self.units
        out: Dict[str, Any] = {"source": self.source}
        out.update(self.meta)
        out.update({
            "units": u,
            "mm_per_pixel": self.mm_per_pixel,
            f"reference_diameter_{u}": _r(self.reference_diameter),
            f"mld_{u}": _r(self.mld),
            "percent_diameter_stenosis": _r(self.percent_diameter_stenosis, 1),
            f"centerline_length_{u}": _r(self.centerline_length, 2),
            "n_lesions": len(self.lesions),
            "lesions": [les.to_dict() for les in self.lesions],
            "orientation": self.orientation,
            "n_side_branches": self.n_side_branches,
            "reference_fit": self.reference_fit,
            "flags": list(self.flags),
            "warnings": list(self.warnings),
        })
        if u == "px":
            out["note"] = "no pixel spacing given: lengths and diameters are in pixels"
        if profile:
            out["profile"] = {
                f"s_{u}": [_r(v, 3) for v in self.s],
                f"diameter_{u}": [_r(v, 4) for v in self.diameter],
                f"reference_{u}": [_r(v, 4) for v in self.reference],
                "centerline_xy": [[_r(x, 2), _r(y, 2)] for x, y in self.centerline_xy],
            }
        return out
