"""What every data backend gives the loop: training batches by epoch and evaluation sets, as Protocols.

Two backends stand behind them: `memory` (the whole set decoded into a uint8 tensor on the training device,
batched and augmented there) and `stream` (image files read, decoded and augmented by DataLoader workers, or
decoded on the GPU). `build.build_data` turns a data config into a `RunData` of either.

Collective operations (summing input statistics over ranks, agreeing on a cache miss) are passed in by the
caller as a `Collectives`; data/ knows nothing of how processes talk to each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from .stats import InputStats


class TrainBatches(Protocol):
    """One rank's share of each global training batch, normalised and augmented, on the training device."""

    iters_per_epoch: int  # global batches per epoch (the last partial one is dropped)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The (images, labels) batches of `epoch` from batch index `start` on; the same for the same
        (seed, epoch), so a resumed run sees the batches the uninterrupted run would have seen."""
        ...


class EvalBatches(Protocol):
    """One rank's shard of an evaluation set, in order and unaugmented: (views, labels) on the device, where
    views is (B, 3, H, W), (B, V, 3, H, W) for V crops, or a list of lists of (3, H, W) for several scales."""

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]: ...


class Collectives(Protocol):
    """The operations across ranks data/ needs; the engine passes in its own under DDP."""

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor: ...

    def any_rank(self, flag: bool, device: torch.device) -> bool: ...


class SingleProcess:
    """The collectives of one process: nothing to add, nobody to ask."""

    @staticmethod
    def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @staticmethod
    def any_rank(flag: bool, device: torch.device) -> bool:
        return flag


SINGLE_PROCESS = SingleProcess()


@dataclass
class RunData:
    """A dataset ready to train on: training batches, evaluation sets by split name ("test", and "val"
    with data.val_size > 0), the class names, and the input statistics the images are normalised with."""

    train: TrainBatches
    evals: dict[str, EvalBatches]
    classes: list[str]
    stats: InputStats
    identity: dict  # what identifies the data (identity.py), checked when a run resumes
    synthetic: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def checkpoint_state(self) -> dict:
        """What using the weights needs besides the config: the class names (what each output means) and
        the statistics the inputs are normalised with; and the data's identity, so that a resume can refuse
        other data. Stored in every checkpoint, for every dataset."""
        return {
            "input": {"classes": list(self.classes), "stats": self.stats.state_dict()},
            "data_identity": self.identity,
        }
