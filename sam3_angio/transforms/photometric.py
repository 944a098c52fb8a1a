"""X-ray photometric augmentation: contrast under-filling, detector blur, dose-like quantum noise,
gamma / contrast / brightness. Pixels only: masks, boxes, queries and view angles are never touched.

Works on ``(C, H, W)`` float frames in [0, 1] (PIL 8-bit and tensors before ``NormalizeAPI`` are
converted on the way in and out). Randomness comes from torch's global RNG (seeded per rank by SAM3's
trainer and per DataLoader worker by torch), so runs are reproducible.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as tnf

from sam3.train.data.sam3_image_dataset import Datapoint

from sam3_angio.registry import TRANSFORMS
from sam3_angio.transforms.image_data import to_unit_tensor


def _uniform(lo: float, hi: float, generator: Optional[torch.Generator] = None) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=generator).item())


def _log_uniform(lo: float, hi: float, generator: Optional[torch.Generator] = None) -> float:
    return math.exp(_uniform(math.log(lo), math.log(hi), generator))


def _chance(p: float, generator: Optional[torch.Generator] = None) -> bool:
    return p > 0 and torch.rand((), generator=generator).item() < p


def _pair(v, name: str) -> Tuple[float, float]:
    lo, hi = (float(v[0]), float(v[1])) if isinstance(v, Sequence) else (float(v), float(v))
    if lo > hi:
        raise ValueError(f"XRayPhotometricAugment: {name}={v!r} has min > max")
    return lo, hi


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(C, H, W)`` with reflect padding; ``sigma`` in pixels."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3.0 * sigma)))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x
    k = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = tnf.pad(x[None], (radius, radius, 0, 0), mode="reflect")
    y = tnf.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = tnf.pad(y, (0, 0, radius, radius), mode="reflect")
    y = tnf.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return y[0]


def grey_closing(x: torch.Tensor, size: int) -> torch.Tensor:
    """Grey-level closing of ``(C, H, W)`` with a ``size`` x ``size`` square (dilation, then erosion):
    removes dark structures narrower than ``size`` pixels, keeps everything wider."""
    size = max(1, int(size)) | 1  # odd, so the window is centred
    if size == 1:
        return x
    r = size // 2

    def dilate(v: torch.Tensor) -> torch.Tensor:  # a square is separable: row max, then column max
        v = tnf.max_pool2d(tnf.pad(v, (r, r, 0, 0), mode="replicate"), (1, size), stride=1)
        return tnf.max_pool2d(tnf.pad(v, (0, 0, r, r), mode="replicate"), (size, 1), stride=1)

    return -dilate(-dilate(x[None]))[0]


def underfill(x: torch.Tensor, factor: float, width: float) -> torch.Tensor:
    """Simulate a poorly filled vessel tree: the contrast of thin dark structures (the black top-hat
    ``closing(x) - x`` with a ``width``-pixel square: opacified vessels, catheter) is scaled by about
    ``factor`` in (0, 1]; wider anatomy, texture and noise are left as they are. The top-hat is taken on
    a lightly smoothed frame so that noise is not mistaken for vessel (so a 3-pixel vessel keeps a little
    more than ``factor`` of its contrast: 0.47 for 0.4)."""
    smooth = gaussian_blur(x, 1.0)
    tophat = (grey_closing(smooth, int(round(width))) - smooth).clamp(min=0)
    return x + (1.0 - factor) * tophat


def quantum_noise(x: torch.Tensor, dose: float, gaussian_sigma: float, generator=None) -> torch.Tensor:
    """Poisson noise at ``dose`` quanta per pixel for a full-scale pixel (lower dose, more noise: the
    relative noise of a pixel of value v is ``1 / sqrt(v * dose)``), plus Gaussian read-out noise.
    One noise field shared by all channels, so a gray frame stays gray."""
    g = x[:1]
    noisy = torch.poisson(g.clamp(min=0) * dose, generator=generator) / dose
    if gaussian_sigma > 0:
        noisy = noisy + gaussian_sigma * torch.randn(g.shape, generator=generator)
    return x + (noisy - g)


@TRANSFORMS.register()
class XRayPhotometricAugment:
    """X-ray photometric jitter (under-filling, blur, dose noise, gamma, contrast, brightness).

    Each effect fires with its own probability; the sampled values are shared by all images of a
    Datapoint. Order (physical first, display last): under-fill -> blur -> noise -> gamma -> contrast
    -> brightness -> clip to [0, 1]. Lengths (``blur_sigma``, ``underfill_width``) are pixels of a
    ``reference_size``-pixel frame and scale with the frame, so the look does not depend on where the
    transform sits relative to ``RandomResizeAPI``.

    Args:
        p_gamma, gamma: probability, range of the exponent (sampled log-uniformly): ``x ** gamma``.
        p_contrast, contrast: probability, factor range about the frame mean.
        p_brightness, brightness: probability, additive offset range (fraction of full scale).
        p_noise, dose: probability, range of quanta per full-scale pixel (log-uniform); 300 is a
            noisy low-dose fluoroscopy-like frame, 3000 a clean cine frame.
        gaussian_noise: range of the read-out noise standard deviation (fraction of full scale).
        p_blur, blur_sigma: probability, Gaussian sigma range (reference pixels).
        p_underfill, underfill_factor, underfill_width: probability of a low-contrast (under-filled)
            frame, range of the vessel-contrast factor, widest vessel affected (reference pixels).
        reference_size: the frame size (min(H, W)) the pixel lengths refer to.
    """

    def __init__(
        self,
        p_gamma: float = 0.5,
        gamma: Sequence[float] = (0.7, 1.5),
        p_contrast: float = 0.5,
        contrast: Sequence[float] = (0.75, 1.25),
        p_brightness: float = 0.5,
        brightness: Sequence[float] = (-0.08, 0.08),
        p_noise: float = 0.5,
        dose: Sequence[float] = (300.0, 3000.0),
        gaussian_noise: Sequence[float] = (0.0, 0.01),
        p_blur: float = 0.2,
        blur_sigma: Sequence[float] = (0.3, 1.2),
        p_underfill: float = 0.1,
        underfill_factor: Sequence[float] = (0.3, 0.7),
        underfill_width: float = 15.0,
        reference_size: int = 512,
    ) -> None:
        for name, p in (("p_gamma", p_gamma), ("p_contrast", p_contrast), ("p_brightness", p_brightness),
                        ("p_noise", p_noise), ("p_blur", p_blur), ("p_underfill", p_underfill)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"XRayPhotometricAugment: {name}={p} is not a probability in [0, 1]")
        self.p_gamma, self.gamma = float(p_gamma), _pair(gamma, "gamma")
        self.p_contrast, self.contrast = float(p_contrast), _pair(contrast, "contrast")
        self.p_brightness, self.brightness = float(p_brightness), _pair(brightness, "brightness")
        self.p_noise, self.dose = float(p_noise), _pair(dose, "dose")
        self.gaussian_noise = _pair(gaussian_noise, "gaussian_noise")
        self.p_blur, self.blur_sigma = float(p_blur), _pair(blur_sigma, "blur_sigma")
        self.p_underfill, self.underfill_factor = float(p_underfill), _pair(underfill_factor, "underfill_factor")
        self.underfill_width = float(underfill_width)
        self.reference_size = int(reference_size)
        if self.gamma[0] <= 0 or self.dose[0] <= 0:
            raise ValueError("XRayPhotometricAugment: gamma and dose ranges must be positive")

    def sample(self, generator: Optional[torch.Generator] = None) -> dict:
        """Draw one set of effect parameters (``None`` = effect off this time)."""
        g = generator
        return {
            "underfill": _uniform(*self.underfill_factor, g) if _chance(self.p_underfill, g) else None,
            "blur": _uniform(*self.blur_sigma, g) if _chance(self.p_blur, g) else None,
            "noise": (_log_uniform(*self.dose, g), _uniform(*self.gaussian_noise, g)) if _chance(self.p_noise, g) else None,
            "gamma": _log_uniform(*self.gamma, g) if _chance(self.p_gamma, g) else None,
            "contrast": _uniform(*self.contrast, g) if _chance(self.p_contrast, g) else None,
            "brightness": _uniform(*self.brightness, g) if _chance(self.p_brightness, g) else None,
        }

    def apply(self, x: torch.Tensor, params: dict, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(C, H, W)`` float in [0, 1] -> same shape, in [0, 1]."""
        c = x.shape[0]
        if c > 1 and all(torch.equal(x[0], x[i]) for i in range(1, c)):
            return self.apply(x[:1], params, generator).expand(c, -1, -1).contiguous()  # gray: 1 channel
        px = min(x.shape[-2:]) / float(self.reference_size)  # reference pixels -> pixels of this frame
        if params["underfill"] is not None:
            x = underfill(x, params["underfill"], self.underfill_width * px)
        if params["blur"] is not None:
            x = gaussian_blur(x, params["blur"] * px)
        if params["noise"] is not None:
            x = quantum_noise(x.clamp(0, 1), params["noise"][0], params["noise"][1], generator)
        x = x.clamp(0, 1)
        if params["gamma"] is not None:
            x = x ** params["gamma"]
        if params["contrast"] is not None:
            m = x.mean()
            x = m + params["contrast"] * (x - m)
        if params["brightness"] is not None:
            x = x + params["brightness"]
        return x.clamp(0, 1)

    def __call__(self, datapoint: Datapoint, **kwargs) -> Datapoint:
        params = self.sample()
        if all(v is None for v in params.values()):
            return datapoint
        for img in datapoint.images:
            x, restore = to_unit_tensor(img.data, "XRayPhotometricAugment")
            img.data = restore(self.apply(x, params))
        return datapoint

    def __repr__(self) -> str:
        return (
            f"XRayPhotometricAugment(p_gamma={self.p_gamma}, gamma={self.gamma}, p_contrast={self.p_contrast}, "
            f"contrast={self.contrast}, p_brightness={self.p_brightness}, brightness={self.brightness}, "
            f"p_noise={self.p_noise}, dose={self.dose}, gaussian_noise={self.gaussian_noise}, p_blur={self.p_blur}, "
            f"blur_sigma={self.blur_sigma}, p_underfill={self.p_underfill}, underfill_factor={self.underfill_factor}, "
            f"underfill_width={self.underfill_width}, reference_size={self.reference_size})"
        )
