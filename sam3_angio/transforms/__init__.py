"""Registered angiography transforms for SAM3's ``ComposeAPI`` pipelines: frame preparation, X-ray
photometric and geometric augmentation, view-angle-aware flips (docs/transforms.md).
"""

from sam3_angio.transforms.flip import RandomFlipWithViewAngles, apply_flip, flip_view_angles
from sam3_angio.transforms.frame import PrepareXRayFrame, prepare_frame
from sam3_angio.transforms.geometric import RandomAffineWithTargets, apply_affine
from sam3_angio.transforms.photometric import XRayPhotometricAugment
from sam3_angio.transforms.queries import SamplePhrases
from sam3_angio.transforms.targets import dropped_object_counts, reset_dropped_object_counts

__all__ = [
    "PrepareXRayFrame",
    "RandomAffineWithTargets",
    "RandomFlipWithViewAngles",
    "SamplePhrases",
    "XRayPhotometricAugment",
    "apply_affine",
    "apply_flip",
    "dropped_object_counts",
    "flip_view_angles",
    "prepare_frame",
    "reset_dropped_object_counts",
]
