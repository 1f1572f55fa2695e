"""Input normalisation on the training device, the same for both backends: uint8 -> float, PCA lighting
(streamed training batches), mean subtraction and scaling by the training set's statistics (stats.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Normalize
from .augment import lighting_offsets
from .stats import InputStats


class Normalizer:
    """mean_image (Sec. 3.4 and 4.2: "the per-pixel mean subtracted"): subtract the training set's mean image.

    Departure, for the optimiser's sake only: the result is also divided by the training set's one scalar
    pixel standard deviation, so inputs have unit variance; the per-pixel structure is the paper's. A view of
    another size than the mean image (multi-scale testing) subtracts the mean image resized to it (bilinear).
    channel (not in the paper): subtract the per-channel mean, divide by the per-channel std.
    """

    def __init__(
        self, stats: InputStats, kind: Normalize = Normalize.mean_image, device: torch.device | str = "cpu"
    ):
        self.stats, self.kind = stats, kind
        if kind is Normalize.mean_image:
            self.mean = stats.mean_image.to(device)
            self.scale = torch.full((3, 1, 1), stats.pixel_std, device=device)
        else:
            self.mean = stats.channel_mean.to(device).view(3, 1, 1)
            self.scale = stats.channel_std.to(device).view(3, 1, 1)

    def to(self, device: torch.device | str) -> Normalizer:
        return Normalizer(self.stats, self.kind, device)

    def _mean_for(self, height: int, width: int) -> torch.Tensor:
        if self.kind is Normalize.channel or self.mean.shape[-2:] == (height, width):
            return self.mean
        return F.interpolate(self.mean[None], size=(height, width), mode="bilinear", align_corners=False)[0]

    def __call__(self, images: torch.Tensor, alphas: torch.Tensor | None = None) -> torch.Tensor:
        """`images` uint8 (..., 3, H, W) on the device; `alphas` (B, 3) lighting coefficients or None."""
        x = images.float()
        if alphas is not None:
            x = x + lighting_offsets(alphas.to(x.device))[:, :, None, None]
        return (x - self._mean_for(*x.shape[-2:])) / self.scale
