"""The ImageNet recipe's image operations (Sec. 3.4): training augmentation, test views, mean image, lighting.

Geometry (resize, crop, flip) is torchvision.transforms.v2 applied to uint8 tensors, in DataLoader workers
(data.decode=cpu) or on the GPU (data.decode=gpu): the same code in both places. Colour work (PCA lighting,
mean subtraction, scaling) happens on the training device, once per batch, after the uint8 transfer.

Every random choice for one training image comes from one per-sample seed (drawn by the sampler from
(seed, epoch)), so a run's images do not depend on the number of workers, the decode path or a resume.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..config import Augment, Normalize
from .stats import InputStats

# AlexNet's "PCA colour augmentation" (Krizhevsky, Sutskever & Hinton 2012, Sec. 4.1), which the paper uses
# ("the standard color augmentation in [21] is used"): to every pixel of an image add
# sum_i alpha_i * lambda_i * p_i, with alpha_i ~ N(0, 0.1) drawn once per image, and (lambda_i, p_i) the
# eigenvalues and eigenvectors of the 3x3 RGB covariance of ImageNet's pixels. AlexNet does not publish them;
# these are the values in common use (fb.resnet.torch), for RGB in [0, 1]; columns of the matrix are p_i.
PCA_EIGENVALUES = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGENVECTORS = torch.tensor(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)


def train_transform(augment: Augment, size: int, scale_range: tuple[int, int]) -> Callable:
    """The geometric part of the training augmentation, on a uint8 (3, H, W) tensor."""
    if augment is Augment.paper:
        low, high = scale_range
        if not size <= low <= high:
            raise ValueError(f"data.scale_range {scale_range} must satisfy image_size {size} <= low <= high")
        # Sec. 3.4: "The image is resized with its shorter side randomly sampled in [256, 480] for scale
        # augmentation. A 224x224 crop is randomly sampled from an image or its horizontal flip".
        shorter_sides = list(range(low, high + 1))
        return v2.Compose(
            [v2.RandomShortestSize(shorter_sides), v2.RandomCrop(size), v2.RandomHorizontalFlip()]
        )
    # Not in the paper: the Inception-style random-size, random-aspect crop (Szegedy et al. 2015).
    return v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()])


def augment_sample(image: torch.Tensor, seed: int, transform: Callable, lighting: float):
    """One training image's geometry and its lighting coefficients, all drawn from `seed`.

    torchvision's transforms draw from the global generator: it is forked so the caller's state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = transform(image)
        alpha = torch.randn(3) * lighting
    return image, alpha


def center_view(image: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """Shorter side to `resize`, then the central `size` x `size` crop (the paper's centre-crop testing)."""
    return TF.center_crop(TF.resize(image, resize), size)


def ten_views(image: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """(10, 3, size, size): the four corner crops and the centre crop of the `resize`d image, then the same
    five of its horizontal flip (Sec. 3.4: "the standard 10-crop testing", after AlexNet)."""
    return torch.stack(TF.ten_crop(TF.resize(image, resize), size))


def scale_views(image: torch.Tensor, scales: list[int]) -> list[torch.Tensor]:
    """The whole image with its shorter side at each of `scales` (fully-convolutional multi-scale testing)."""
    return [TF.resize(image, scale) for scale in scales]


def lighting_offsets(alphas: torch.Tensor) -> torch.Tensor:
    """(B, 3) RGB offsets in pixel units (0-255) for the per-image coefficients `alphas` (B, 3)."""
    eigenvalues = PCA_EIGENVALUES.to(alphas.device)
    eigenvectors = PCA_EIGENVECTORS.to(alphas.device)
    return (alphas * eigenvalues) @ eigenvectors.T * 255.0


class DeviceNormalize:
    """The per-batch device step: uint8 -> float, PCA lighting (training), mean subtraction and scaling.

    mean_image (the paper's "per-pixel mean subtracted"): subtract the mean image, then divide by the one
    scalar pixel std for unit-variance inputs (the same departure as the CIFAR loader's Normalizer). A view of
    another size than the mean image (multi-scale testing) subtracts the mean image resized to it (bilinear).
    channel (not in the paper): subtract the per-channel mean, divide by the per-channel std.
    """

    def __init__(self, stats: InputStats, kind: Normalize, device: torch.device, channels_last: bool = False):
        self.kind, self.channels_last = kind, channels_last
        if kind is Normalize.mean_image:
            self.mean = stats.mean_image.to(device)
            self.scale = torch.full((3, 1, 1), stats.pixel_std, device=device)
        else:
            self.mean = stats.channel_mean.to(device).view(3, 1, 1)
            self.scale = stats.channel_std.to(device).view(3, 1, 1)

    def _mean_for(self, height: int, width: int) -> torch.Tensor:
        if self.kind is Normalize.channel or self.mean.shape[-2:] == (height, width):
            return self.mean
        return F.interpolate(self.mean[None], size=(height, width), mode="bilinear", align_corners=False)[0]

    def __call__(self, images: torch.Tensor, alphas: torch.Tensor | None = None) -> torch.Tensor:
        """`images` uint8 (..., 3, H, W) on the device; `alphas` (B, 3) lighting coefficients or None."""
        x = images.float()
        if alphas is not None:
            x = x + lighting_offsets(alphas.to(x.device))[:, :, None, None]
        x = (x - self._mean_for(*x.shape[-2:])) / self.scale
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
