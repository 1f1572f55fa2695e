"""Splitting and sharding, the same for both backends: the validation hold-out, each rank's part of a global
training batch, each rank's shard of an evaluation set, and the per-epoch random generator.

Randomness is a pure function of (seed, epoch): a run resumed at (epoch, batch) sees exactly the batches the
uninterrupted run would have seen, with nothing but two integers to store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import UserError

VAL_SPLIT_SEED = 0  # the held-out validation images are the same for every trainer seed


def hold_out(count: int, val_size: int, what: str) -> tuple[list[int], list[int]]:
    """(train, val) indices, each sorted: `val_size` of `count` training images held out as a validation set
    (the paper's 45k/5k protocol for choosing hyper-parameters; the test set never chooses anything)."""
    if not 0 < val_size < count:
        raise UserError(f"data.val_size={val_size} must be between 0 and {count} ({what})")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    return order[val_size:].sort().values.tolist(), order[:val_size].sort().values.tolist()


@dataclass(frozen=True)
class Shard:
    """Where this process's part of the data goes: its device, and its rank among `world_size` processes."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world_size: int = 1


ONE_CPU_PROCESS = Shard()


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class RankShare:
    """Rank r's part of every global batch of an epoch's order: the r-th of world_size equal parts, so over
    an epoch each sample is seen by exactly one rank, and k ranks see the global batches one rank would. The
    last partial global batch is dropped (the schedule counts iterations)."""

    def __init__(self, count: int, global_batch: int, *, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise UserError(f"batch size {global_batch} does not divide among {world_size} processes")
        if count < global_batch:
            raise UserError(f"the training set has {count} images, fewer than one batch of {global_batch}")
        self.count, self.global_batch, self.local_batch = count, global_batch, global_batch // world_size
        self.rank = rank
        self.iters_per_epoch = count // global_batch

    def bounds(self, step: int) -> tuple[int, int]:
        """[begin, end) of this rank's part of global batch `step` in the epoch's order."""
        begin = step * self.global_batch + self.rank * self.local_batch
        return begin, begin + self.local_batch


def eval_shard(count: int, rank: int = 0, world_size: int = 1) -> range:
    """Rank r evaluates samples r, r + k, r + 2k, ...: every sample exactly once across k ranks (no padding,
    no duplicates)."""
    return range(rank, count, world_size)
