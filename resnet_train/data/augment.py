"""The image operations of the paper's two recipes: CIFAR's pad, crop and flip (Sec. 4.2), a batch at a time
on the device; ImageNet's training augmentation, test views and lighting (Sec. 3.4).

Geometry is torchvision.transforms.v2 on uint8 tensors, the same code in DataLoader workers (data.decode=cpu)
and on the GPU (data.decode=gpu); colour work runs on the training device after the uint8 transfer. Every
random choice for one training image comes from one per-sample seed drawn from (seed, epoch), so a run's
images do not depend on the number of workers, the decode path or a resume.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..config import Augment

PAD = 4  # Sec. 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled"


def draw_crops_and_flips(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each of `count` images' (row, col) crop offset in [0, 2 * PAD] and whether it is flipped."""
    offsets = torch.randint(0, 2 * PAD + 1, (count, 2), generator=generator)
    flips = torch.randint(0, 2, (count,), generator=generator).bool()
    return offsets, flips


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Zero-pad by PAD, then crop each image at its (row, col) offset and mirror the flipped ones. Padding
    comes after normalisation, so padded pixels hold the mean image's value (zero). The crop and the flip are
    one gather: a flipped image reads its columns right to left."""
    batch, channels, height, width = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = offsets[:, 0, None] + torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device).expand(batch, width)
    columns = torch.where(flips[:, None], columns.flip(1), columns) + offsets[:, 1, None]
    batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], columns[:, None, None, :]]


# AlexNet's "PCA colour augmentation" (Krizhevsky, Sutskever & Hinton 2012, Sec. 4.1), which the paper uses
# ("the standard color augmentation in [21] is used"): to every pixel of an image add
# sum_i alpha_i * lambda_i * p_i, with alpha_i ~ N(0, 0.1) drawn once per image, and (lambda_i, p_i) the
# eigenvalues and eigenvectors of the 3x3 RGB covariance of ImageNet's pixels. AlexNet does not publish them;
# these are the values in common use (fb.resnet.torch), for RGB in [0, 1]; columns of the matrix are p_i.
PCA_EIGENVALUES = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGENVECTORS = torch.tensor([[-0.5675, 0.7192, 0.4009],
                                 [-0.5808, -0.0045, -0.8140],
                                 [-0.5836, -0.6948, 0.4203]])  # fmt: skip


def train_transform(augment: Augment, size: int, scale_range: tuple[int, int]) -> Callable:
    """The geometric part of the training augmentation, on a uint8 (3, H, W) tensor."""
    if augment is Augment.paper:
        low, high = scale_range
        if not size <= low <= high:
            raise ValueError(f"data.scale_range {scale_range} must satisfy image_size {size} <= low <= high")
        # Sec. 3.4: "The image is resized with its shorter side randomly sampled in [256, 480] for scale
        # augmentation. A 224x224 crop is randomly sampled from an image or its horizontal flip".
        sides = list(range(low, high + 1))  # the shorter side's choices
        return v2.Compose([v2.RandomShortestSize(sides), v2.RandomCrop(size), v2.RandomHorizontalFlip()])
    # Not in the paper: the Inception-style random-size, random-aspect crop (Szegedy et al. 2015).
    return v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()])


def augment_sample(image: torch.Tensor, seed: int, transform: Callable, lighting: float):
    """One training image's geometry and its lighting coefficients, all drawn from `seed` (torchvision's
    transforms draw from the global generator: it is forked so the caller's state is untouched)."""
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
    return (alphas * PCA_EIGENVALUES.to(alphas.device)) @ PCA_EIGENVECTORS.to(alphas.device).T * 255.0
