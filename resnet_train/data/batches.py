"""Serve an in-memory image set in batches, on the training device, with the paper's CIFAR augmentation.

The uint8 images live on the device (on the GPU when training on a GPU); each batch is gathered, normalised,
padded, cropped and flipped there in a few tensor operations, with no per-sample Python work.

Randomness is a pure function of (seed, epoch): the sample order and every sample's crop offset and flip are
drawn at the start of an epoch from a generator seeded with both. A run resumed at (epoch, batch) therefore
sees exactly the batches the uninterrupted run would have seen, with nothing but two integers to store.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .readers import ImageSet

VAL_SPLIT_SEED = 0  # the held-out validation images are the same for every trainer seed
PAD = 4  # Sec. 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled"


class Normalizer:
    """Per-pixel mean subtraction (Sec. 4.2: "the per-pixel mean subtracted"), of the training set's mean.

    Departure, for the optimiser's sake only: the result is also divided by the training set's global pixel
    standard deviation (one scalar), so inputs have unit variance; the per-pixel structure is the paper's.
    """

    def __init__(self, mean: torch.Tensor, std: float):
        self.mean = mean  # (C, H, W) float32, in pixel units
        self.std = float(std)

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        pixels = images.double()
        return cls(pixels.mean(dim=0).float(), float(pixels.std()))

    def to(self, device: torch.device) -> Normalizer:
        return Normalizer(self.mean.to(device), self.std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class TrainBatches:
    """One rank's share of each global batch of the training set, augmented on `device`.

    Every global batch is a slice of the epoch's permutation; rank r takes the r-th equal part, so over an
    epoch each sample is seen by exactly one rank, and a run on k ranks sees the same global batches as a
    run on one. The last partial global batch of an epoch is dropped (the schedule counts iterations).
    """

    def __init__(
        self,
        data: ImageSet,
        normalize: Normalizer,
        global_batch: int,
        *,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        augment: bool = True,
        channels_last: bool = False,
    ):
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} does not divide among {world_size} processes")
        if len(data) < global_batch:
            raise ValueError(
                f"the training set has {len(data)} images, fewer than one batch of {global_batch}"
            )
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.normalize = normalize.to(device)
        self.global_batch, self.local_batch = global_batch, global_batch // world_size
        self.seed, self.rank, self.device = seed, rank, device
        self.augment, self.channels_last = augment, channels_last
        self.iters_per_epoch = len(data) // global_batch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, beginning at batch index `start`."""
        count = len(self.labels)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(count, generator=generator)
        offsets = torch.randint(0, 2 * PAD + 1, (count, 2), generator=generator)
        flips = torch.randint(0, 2, (count,), generator=generator).bool()
        order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        for step in range(start, self.iters_per_epoch):
            begin = step * self.global_batch + self.rank * self.local_batch
            index = order[begin : begin + self.local_batch]
            images = self.normalize(self.images[index])
            if self.augment:
                images = crop_and_flip(images, offsets[index], flips[index])
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[index]


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Zero-pad by PAD, then crop each image at its (row, col) offset and mirror the flipped ones.

    Padding comes after normalisation, so padded pixels hold the mean image's value (zero). The crop and the
    flip are one gather: a flipped image reads its columns right to left.
    """
    batch, channels, height, width = images.shape
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    rows = offsets[:, 0, None] + torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device).expand(batch, width)
    columns = torch.where(flips[:, None], columns.flip(1), columns) + offsets[:, 1, None]
    batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], columns[:, None, None, :]]


class EvalBatches:
    """A test or validation set in order, unaugmented; rank r takes samples r, r + k, r + 2k, ... so every
    sample is evaluated exactly once across k ranks (no padding, no duplicates)."""

    def __init__(
        self,
        data: ImageSet,
        normalize: Normalizer,
        batch_size: int,
        *,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ):
        self.images = data.images[rank::world_size].to(device)
        self.labels = data.labels[rank::world_size].to(device)
        self.normalize = normalize.to(device)
        self.batch_size, self.channels_last = batch_size, channels_last
        self.total = len(data)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for begin in range(0, len(self.labels), self.batch_size):
            images = self.normalize(self.images[begin : begin + self.batch_size])
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, self.labels[begin : begin + self.batch_size]
