"""The in-memory backend: serve an ImageSet in batches, on the training device, with the paper's CIFAR
augmentation.

The uint8 images live on the device (on the GPU when training on a GPU); each batch is gathered, normalised,
padded, cropped and flipped there in a few tensor operations, with no per-sample Python work. The sample
order and every sample's crop offset and flip are drawn at the start of an epoch from (seed, epoch)
(split.epoch_generator).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .normalize import Normalizer
from .readers import ImageSet
from .split import ONE_CPU_PROCESS, RankShare, Shard, epoch_generator, eval_shard

PAD = 4  # Sec. 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled"


def _channels_last(images: torch.Tensor, enabled: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if enabled else images


class MemoryTrainBatches:
    """One rank's share (split.RankShare) of each global batch of the training set, augmented on `device`."""

    def __init__(
        self,
        data: ImageSet,
        normalize: Normalizer,
        global_batch: int,
        *,
        seed: int,
        shard: Shard = ONE_CPU_PROCESS,
        augment: bool = True,
        channels_last: bool = False,
    ):
        self.share = RankShare(len(data), global_batch, rank=shard.rank, world_size=shard.world_size)
        self.device = device = shard.device
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.normalize = normalize.to(device)
        self.seed = seed
        self.augment, self.channels_last = augment, channels_last
        self.iters_per_epoch = self.share.iters_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch`, beginning at batch index `start`."""
        count = len(self.labels)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(count, generator=generator)
        offsets = torch.randint(0, 2 * PAD + 1, (count, 2), generator=generator)
        flips = torch.randint(0, 2, (count,), generator=generator).bool()
        order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        for step in range(start, self.iters_per_epoch):
            begin, end = self.share.bounds(step)
            index = order[begin:end]
            images = self.normalize(self.images[index])
            if self.augment:
                images = crop_and_flip(images, offsets[index], flips[index])
            yield _channels_last(images, self.channels_last), self.labels[index]


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


class MemoryEvalBatches:
    """A test or validation set in order, unaugmented; this rank's shard (split.eval_shard)."""

    def __init__(
        self,
        data: ImageSet,
        normalize: Normalizer,
        batch_size: int,
        *,
        shard: Shard = ONE_CPU_PROCESS,
        channels_last: bool = False,
    ):
        part = eval_shard(len(data), shard.rank, shard.world_size)
        self.images = data.images[part.start :: part.step].to(shard.device)
        self.labels = data.labels[part.start :: part.step].to(shard.device)
        self.normalize = normalize.to(shard.device)
        self.batch_size, self.channels_last = batch_size, channels_last

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for begin in range(0, len(self.labels), self.batch_size):
            images = self.normalize(self.images[begin : begin + self.batch_size])
            yield _channels_last(images, self.channels_last), self.labels[begin : begin + self.batch_size]
