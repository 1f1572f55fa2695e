"""The data backends' one interface (`Backend`) and what they give the loop: training batches by epoch and
evaluation sets, as Protocols.

Two backends implement it: `memory.MemoryBackend` (the whole set decoded into a uint8 tensor on the training
device, batched and augmented there) and `stream.StreamBackend` (image files read, decoded and augmented by
DataLoader workers, or decoded on the GPU). `build.build_data` looks the backend up once and turns a data
config into a `RunData`; the hold-out (split.Splits), normalisation and memory layout are the same for both.

Collective operations (summing input statistics over ranks, agreeing on a cache miss) are passed in by the
caller as a `Collectives`; data/ knows nothing of how processes talk to each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from .stats import InputStats

if TYPE_CHECKING:
    from ..config import Crops
    from .files import BadImages
    from .identity import Source
    from .normalize import Normalizer
    from .split import Images, Shard, Splits


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

    def __len__(self) -> int:
        """The batches one pass over this rank's shard yields."""
        ...


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


class Backend(Protocol):
    """Where a dataset's images live and how batches are made of them; built from a data config and the
    data root (resolved once, by build.py). Splits hold an ImageSet (memory) or ImageFiles (stream)."""

    bad_images: BadImages  # the unreadable images met (a streamed backend skips them, data.on_bad_image)

    def splits(self, classes: list[str] | None = None, *, need_train: bool = True) -> Splits:
        """The training set (whole: Splits.held_out holds out a validation set) and the test set, labelled by
        `classes` (a checkpoint's, by name) or else by the training set's class folders. need_train=False:
        the training set may be left unread (None)."""
        ...

    def source(self) -> Source:
        """What identifies the images `splits` read (identity.py), before any hold-out."""
        ...

    def stats(
        self, train: Images, *, shard: Shard, collectives: Collectives, run_dir: Path | None = None
    ) -> InputStats:
        """The input statistics of the training set `train` (each rank a share, summed by `collectives`;
        `run_dir` may hold a cache)."""
        ...

    def train_batches(
        self, train: Images, normalize: Normalizer, batch_size: int, *, seed: int, shard: Shard
    ) -> TrainBatches:
        """This rank's share of each global batch of `batch_size`, augmented as the backend's recipe does."""
        ...

    def check_crops(self, crops: Crops) -> None:
        """Refuse test views (eval.crops) this backend cannot give, before anything is read."""
        ...

    def eval_batches(
        self, images: Images, normalize: Normalizer, batch_size: int, *, shard: Shard, crops: Crops
    ) -> EvalBatches:
        """This rank's shard of an evaluation set, seen through `crops`."""
        ...


class ChannelsLastTrain:
    """Training batches in the channels_last memory format (the net's, trainer.channels_last)."""

    def __init__(self, batches: TrainBatches):
        self.batches, self.iters_per_epoch = batches, batches.iters_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.batches.epoch(epoch, start):
            yield channels_last(images), labels


class ChannelsLastEval:
    """Evaluation batches with their (B, 3, H, W) views in the channels_last memory format (other views, ten
    crops or several scales, as they are)."""

    def __init__(self, batches: EvalBatches):
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
