"""What the data gives the loop (`RunData`), and the channels_last view of a backend's batches.

A backend's training batches' `epoch(epoch, start)` yields this rank's share of each global batch as (images,
labels) on the device, the same for the same (seed, epoch), so a resumed run sees what the uninterrupted run
would have; its evaluation sets are iterables of (views, labels) with a length, in order and unaugmented,
views being (B, 3, H, W), (B, V, 3, H, W) for V crops, or a list of lists of (3, H, W) for several scales.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .stats import InputStats


class ChannelsLastTrain:
    """Training batches in the channels_last memory format (the net's, trainer.channels_last)."""

    def __init__(self, batches):
        self.batches, self.iters_per_epoch = batches, batches.iters_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.batches.epoch(epoch, start):
            yield channels_last(images), labels


class ChannelsLastEval:
    """Evaluation batches with their (B, 3, H, W) views in channels_last (other views as they are)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        for views, labels in self.batches:
            yield channels_last(views), labels

    def __len__(self) -> int:
        return len(self.batches)


def channels_last(views: Any) -> Any:
    if isinstance(views, torch.Tensor) and views.dim() == 4:
        return views.contiguous(memory_format=torch.channels_last)
    return views


@dataclass
class RunData:
    """A dataset ready to train on: training batches, evaluation sets by split name ("test", and "val"
    with data.val_size > 0), the class names, and the input statistics the images are normalised with."""

    train: Any
    evals: dict[str, Any]
    classes: list[str]
    stats: InputStats
    identity: dict  # identity.py, checked when a run resumes
    synthetic: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def checkpoint_state(self) -> dict:
        """What using the weights needs besides the config (class names, input statistics), and the data's
        identity so that a resume can refuse other data. Stored in every checkpoint."""
        inputs = {"classes": list(self.classes), "stats": self.stats.state_dict()}
        return {"input": inputs, "data_identity": self.identity}
