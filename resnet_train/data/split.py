"""Splitting and sharding, the same for both backends. Randomness is a pure function of (seed, epoch): a run
resumed at (epoch, batch) sees exactly the batches the uninterrupted run would have, with two integers stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import torch

from ..errors import UserError

VAL_SPLIT_SEED = 0  # the held-out validation images are the same for every trainer seed

Split = TypeVar("Split")  # readers.ImageSet (decoded, in memory) or files.ImageFiles (to be streamed)


@dataclass
class Splits(Generic[Split]):
    """A dataset's training, validation (None until held out) and test sets. `train` is None where only the
    test set was read (a streamed tree evaluated with a checkpoint's classes and statistics)."""

    train: Split | None
    val: Split | None
    test: Split
    synthetic: bool = False

    @property
    def classes(self) -> list[str]:
        return (self.train or self.test).classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def held_out(self, val_size: int) -> Splits[Split]:
        """`val_size` training images held out as the validation set (the paper's 45k/5k protocol for choosing
        hyper-parameters; the test set never chooses anything), both parts in order; unchanged for 0."""
        if not val_size:
            return self
        count = len(self.train)
        if not 0 < val_size < count:
            raise UserError(f"data.val_size={val_size} must be between 0 and {count} (the training set)")
        order = torch.randperm(count, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        kept, held = order[val_size:].sort().values.tolist(), order[:val_size].sort().values.tolist()
        return replace(self, train=self.train.subset(kept), val=self.train.subset(held))

    def evals(self) -> dict[str, Split]:
        """The evaluation sets by name: "test", and "val" once held out."""
        return {"test": self.test} | ({"val": self.val} if self.val is not None else {})


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
        self.global_batch, self.local_batch, self.rank = global_batch, global_batch // world_size, rank
        self.iters_per_epoch = count // global_batch

    def bounds(self, step: int) -> tuple[int, int]:
        """[begin, end) of this rank's part of global batch `step` in the epoch's order."""
        begin = step * self.global_batch + self.rank * self.local_batch
        return begin, begin + self.local_batch


def eval_shard(count: int, rank: int = 0, world_size: int = 1) -> range:
    """Rank r evaluates samples r, r + k, r + 2k, ...: every sample exactly once across k ranks (no padding,
    no duplicates)."""
    return range(rank, count, world_size)
