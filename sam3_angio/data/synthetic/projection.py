"""C-arm perspective projection: patient points (mm) to detector pixels for a (primary, secondary) view.

Patient coordinates are DICOM LPS in millimetres (x: patient left, y: posterior, z: superior),
relative to the C-arm isocenter. Angles follow DICOM PositionerPrimary/SecondaryAngle: primary LAO
positive / RAO negative, secondary cranial positive / caudal negative, degrees.

Model (the usual one-source, flat-detector pinhole)::

    d = cos(sec) * (cos(prim) * A + sin(prim) * L) + sin(sec) * S     beam direction, source -> detector
    u = cos(prim) * L - sin(prim) * A                                  image x (columns, rightwards)
    v = u x d                                                          image y (rows, downwards)
    source = -SOD * d;  pixel = centre + (SID / depth) * (q . u, q . v) / spacing,  q = p - source,
    depth = q . d

with A = anterior = -y, L = +x, S = +z. At (0, 0) the beam runs posterior to anterior, the patient's
left is on the image's right and the head is up (the usual frontal display). A primary rotation
turns the detector about the patient's long axis towards the patient's left (LAO); a secondary
rotation tilts it towards the head (cranial).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

ANTERIOR = np.array([0.0, -1.0, 0.0])
LEFT = np.array([1.0, 0.0, 0.0])
SUPERIOR = np.array([0.0, 0.0, 1.0])


def carm_axes(primary_deg: float, secondary_deg: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors ``(d, u, v)``: beam direction, image x and image y, in LPS coordinates."""
    p = np.deg2rad(primary_deg)
    s = np.deg2rad(secondary_deg)
    d = np.cos(s) * (np.cos(p) * ANTERIOR + np.sin(p) * LEFT) + np.sin(s) * SUPERIOR
    u = np.cos(p) * LEFT - np.sin(p) * ANTERIOR
    v = np.cross(u, d)
    return d, u, v


@dataclass(frozen=True)
class CArmView:
    """One acquisition geometry. Distances in mm; ``detector_spacing_mm`` is the pixel pitch at the
    detector; ``isocenter`` is where the C-arm's rotation centre sits in the patient (LPS mm)."""

    primary_deg: float
    secondary_deg: float
    height: int = 512
    width: int = 512
    sid_mm: float = 1100.0  # source-image distance
    sod_mm: float = 750.0  # source-object (isocenter) distance
    detector_spacing_mm: float = 0.39
    isocenter: Tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    @property
    def mm_per_pixel(self) -> float:
        """Pixel size at the isocenter (the usual isocenter calibration of QCA)."""
        return self.detector_spacing_mm * self.sod_mm / self.sid_mm

    @property
    def axes(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        return carm_axes(self.primary_deg, self.secondary_deg)

    @property
    def source(self) -> np.ndarray:
        d, _, _ = self.axes
        return np.asarray(self.isocenter, dtype=np.float64) - self.sod_mm * d

    def project(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``points (N, 3)`` LPS mm -> ``(xy (N, 2)`` pixel coordinates (x = column, y = row, pixel
        centres at integers), ``depth (N,)`` mm from the source along the beam)."""
        d, u, v = self.axes
        q = np.asarray(points, dtype=np.float64) - self.source
        depth = q @ d
        scale = self.sid_mm / depth / self.detector_spacing_mm
        x = (self.width - 1) / 2.0 + scale * (q @ u)
        y = (self.height - 1) / 2.0 + scale * (q @ v)
        return np.stack([x, y], axis=-1), depth

    def pixels_per_mm(self, depth: np.ndarray) -> np.ndarray:
        """Image pixels per mm of an object at ``depth`` mm from the source (magnification / pitch)."""
        return self.sid_mm / np.asarray(depth) / self.detector_spacing_mm

    def rays(self) -> Tuple[np.ndarray, np.ndarray]:
        """``(source (3,), directions (H, W, 3))``: unit rays from the source through pixel centres."""
        d, u, v = self.axes
        xs = (np.arange(self.width) - (self.width - 1) / 2.0) * self.detector_spacing_mm
        ys = (np.arange(self.height) - (self.height - 1) / 2.0) * self.detector_spacing_mm
        dirs = (
            self.sid_mm * d[None, None, :]
            + xs[None, :, None] * u[None, None, :]
            + ys[:, None, None] * v[None, None, :]
        )
        dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
        return self.source, dirs
