"""The C-arm view-angle contract, in one place: the value of one frame, its parser, and the batch field.

Primary angle: LAO positive, RAO negative; secondary: cranial positive, caudal negative; degrees
(DICOM PositionerPrimaryAngle / PositionerSecondaryAngle). Unknown angles are ``None`` per frame and
``known=False`` in a batch - never a 0 that would claim a straight AP view.

    contours JSON / COCO image record / DICOM header / --angles  -> ViewAngles | None   (one frame)
    [ViewAngles | None] * B  -> ViewBatch(angles (B, 2) float32 degrees, known (B,) bool)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Optional, Sequence

from sam3_angio.errors import DataError

if TYPE_CHECKING:  # torch is imported where a batch is built: the data tools stay torch-free
    import torch

PRIMARY_LIMIT = 180.0  # |LAO/RAO| in degrees
SECONDARY_LIMIT = 90.0  # |CRA/CAU| in degrees
_SIGNS = {"primary": ("LAO positive", PRIMARY_LIMIT), "secondary": ("cranial positive", SECONDARY_LIMIT)}


class ViewAngles(NamedTuple):
    """The C-arm angles of one frame, in degrees (primary LAO+/RAO-, secondary CRA+/CAU-). A named
    pair: ``ViewAngles(-30, 25) == (-30, 25)``."""

    primary: float
    secondary: float

    def to_dict(self) -> dict:
        return {"primary": self.primary, "secondary": self.secondary}

    def mirrored(self, horizontal: bool, vertical: bool) -> "ViewAngles":
        """The angles under which a flipped frame would be the image of a mirrored heart: a horizontal
        flip negates the primary angle, a vertical flip the secondary."""
        return ViewAngles(-self.primary if horizontal else self.primary,
                          -self.secondary if vertical else self.secondary)

    def describe(self) -> str:
        p = f"{'LAO' if self.primary >= 0 else 'RAO'} {abs(self.primary):g}"
        s = f"{'CRA' if self.secondary >= 0 else 'CAU'} {abs(self.secondary):g}"
        return f"{p} / {s}"


def check_angle(key: str, value: Any, where: str, label: Optional[str] = None) -> float:
    """One angle (``key`` = primary | secondary) as a finite float within its range, or a DataError
    naming ``where`` and the field (``label``, default ``view_angles.<key>``)."""
    sign, limit = _SIGNS[key]
    label = label or f"view_angles.{key}"
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {label} is {value!r}; expected a number of degrees ({sign})") from None
    if not math.isfinite(v):
        kind = "NaN" if math.isnan(v) else "infinite"
        # what "unknown" is written as where the value came from: JSON null, or leaving the option out
        unknown = ("\"view_angles\": null if unknown" if label.startswith("view_angles")
                   else f"leave {where} out if the angles are unknown" if where.startswith("--")
                   else "drop the value if the angles are unknown")
        raise DataError(f"{where}: {label} is {value!r} ({kind} angle); not finite: expected degrees ({sign}), "
                        f"or {unknown}")
    if abs(v) > limit:
        raise DataError(f"{where}: {label} = {v:g} is outside -{limit:g}..{limit:g} degrees ({sign})")
    return v


def parse_view_angles(value: Any, where: str) -> Optional[ViewAngles]:
    """``{"primary": deg, "secondary": deg}`` (a COCO image record's or contours JSON's ``view_angles``)
    or a (primary, secondary) pair -> ViewAngles; ``None`` -> None (unknown). Anything else, a missing, non-finite or out-of-range
    angle: a DataError naming ``where``."""
    if value is None:
        return None
    if isinstance(value, ViewAngles):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = {"primary": value[0], "secondary": value[1]}
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: view_angles is {value!r}; expected {{\"primary\": degrees LAO+, "
                        f"\"secondary\": degrees CRA+}} or null for unknown")
    for key in _SIGNS:
        if value.get(key) is None:
            raise DataError(f"{where} has no view_angles.{key} (expected degrees, {_SIGNS[key][0]}); "
                            f"write \"view_angles\": null if the angles are unknown")
    return ViewAngles(check_angle("primary", value["primary"], where),
                      check_angle("secondary", value["secondary"], where))


def parse_angles_text(text: str, where: str = "--angles") -> ViewAngles:
    """``"PRIMARY,SECONDARY"`` in degrees (``"-30,25"`` = RAO 30 / CRA 25) -> ViewAngles."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise DataError(f"{where} {text!r}: expected PRIMARY,SECONDARY in degrees, e.g. -30,25 "
                        f"(RAO 30 cranial 25; LAO and cranial are positive)")
    return ViewAngles(check_angle("primary", parts[0], where, "primary angle"),
                      check_angle("secondary", parts[1], where, "secondary angle"))


@dataclass
class ViewBatch:
    """The view angles of a batch of frames: ``angles`` (B, 2) float32 degrees (rows of unknown views
    hold 0 and must not be read), ``known`` (B,) bool."""

    angles: torch.Tensor
    known: torch.Tensor

    @classmethod
    def of(cls, views: Sequence[Optional[ViewAngles]]) -> "ViewBatch":
        import torch

        rows = [(v.primary, v.secondary) if v is not None else (0.0, 0.0) for v in views]
        angles = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), 2)
        known = torch.tensor([v is not None for v in views], dtype=torch.bool)
        return cls(angles=angles, known=known)

    @classmethod
    def unknown(cls, batch: int, device=None) -> "ViewBatch":
        import torch

        return cls(angles=torch.zeros(batch, 2, device=device),
                   known=torch.zeros(batch, dtype=torch.bool, device=device))

    def __len__(self) -> int:
        return int(self.known.shape[0])

    def with_angles(self, angles: torch.Tensor, known: Optional[torch.Tensor] = None) -> "ViewBatch":
        """A copy with other angles (for angle sweeps); ``known`` defaults to all known."""
        import torch

        if known is None:
            known = torch.ones(angles.shape[0], dtype=torch.bool, device=angles.device)
        return ViewBatch(angles=angles.float(), known=known.bool())
