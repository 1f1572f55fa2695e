"""The streamed backend's batch sampler: which files make up this rank's part of each training batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .split import RankShare, epoch_generator


class EpochSampler:
    """Batch sampler: rank r's part (split.RankShare) of each global batch of epoch `epoch`, from batch
    `start` on, as (index, seed) pairs; the order and one seed per image are drawn from (seed, epoch).
    Resuming at `start` skips start x global_batch images without reading them."""

    def __init__(self, count: int, global_batch: int, *, seed: int, rank: int = 0, world_size: int = 1):
        self.share = RankShare(count, global_batch, rank=rank, world_size=world_size)
        self.count, self.seed = count, seed
        self.iters_per_epoch = self.share.iters_per_epoch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.iters_per_epoch - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.count, generator=generator)
        seeds = torch.randint(0, 2**62, (self.count,), generator=generator)
        for step in range(self.start, self.iters_per_epoch):
            begin, end = self.share.bounds(step)
            yield list(zip(order[begin:end].tolist(), seeds[begin:end].tolist()))
