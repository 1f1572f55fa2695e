"""The in-memory backend (data.loader=memory): the whole dataset decoded once into uint8 tensors held on the
training device, each batch gathered, normalised, padded, cropped and flipped there (Sec. 4.2) in a few tensor
operations. The order and every sample's crop offset and flip are drawn per epoch from (seed, epoch).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from ..config import BadImage, Crops, DataConfig
from ..errors import UserError
from .augment import crop_and_flip, draw_crops_and_flips
from .datasets import dataset
from .files import BadImages
from .identity import Source
from .normalize import Normalizer
from .readers import ImageSet, read_image_folder, read_splits
from .split import ONE_CPU_PROCESS, RankShare, Shard, Splits, epoch_generator, eval_shard
from .stats import InputStats


class MemoryBackend:
    """The backend of data.loader=memory: CIFAR (archive or image tree), data=synthetic and small
    ImageFolder trees of one image size."""

    def __init__(self, d: DataConfig, root: Path):
        self.d, self.root = d, root
        self.bad_images = BadImages(BadImage.error)  # stays empty: an unreadable image stops the read
        self._source: Source | None = None

    def splits(self, classes: list[str] | None = None, *, need_train: bool = True) -> Splits[ImageSet]:
        """With need_train=False (a checkpoint's `classes` label the test set), train/ is not read."""
        entry = dataset(self.d.name)
        if not need_train and entry.read is None and not entry.generated:
            folders = [self.root / name for name in entry.eval_folders if (self.root / name).is_dir()]
            if folders:
                return Splits(None, None, read_image_folder(folders[0], None, classes))
        splits, self._source = read_splits(self.d, self.root)
        if classes is None:
            return splits  # else labelled by a checkpoint's class names, by name, as a streamed tree is
        relabel = functools.partial(ImageSet.relabel, classes=classes, where=self.root)
        return replace(splits, train=relabel(splits.train), test=relabel(splits.test))

    def source(self) -> Source:
        return self._source

    def stats(self, train: ImageSet, *, shard: Shard, run_dir: Path | None = None) -> InputStats:
        """Of every training image; each rank holds them all, so there is nothing to add across ranks."""
        return InputStats.fit(train.images)

    def train_batches(
        self, train: ImageSet, normalize: Normalizer, batch_size: int, *, seed: int, shard: Shard
    ) -> MemoryTrainBatches:
        return MemoryTrainBatches(train, normalize, batch_size, seed=seed, shard=shard)

    def check_crops(self, crops: Crops) -> None:
        if crops is not Crops.center:
            raise UserError(
                f"eval.crops={crops.value} needs a streamed dataset (data.loader=stream); "
                f"{self.d.name} is tested on the original images only (Sec. 4.2): use eval.crops=center"
            )

    def eval_batches(
        self, images: ImageSet, normalize: Normalizer, batch_size: int, *, shard: Shard,
        crops: Crops = Crops.center,  # checked by build_eval_set (check_crops)
    ) -> MemoryEvalBatches:  # fmt: skip
        return MemoryEvalBatches(images, normalize, batch_size, shard=shard)


class MemoryTrainBatches:
    """One rank's share (split.RankShare) of each global batch of the training set, augmented on `device`."""

    def __init__(
        self, data: ImageSet, normalize: Normalizer, global_batch: int, *, seed: int,
        shard: Shard = ONE_CPU_PROCESS, augment: bool = True,
    ):  # fmt: skip
        self.share = RankShare(len(data), global_batch, rank=shard.rank, world_size=shard.world_size)
        self.device = device = shard.device
        self.images, self.labels = data.images.to(device), data.labels.to(device)
        self.normalize, self.seed, self.augment = normalize.to(device), seed, augment
        self.iters_per_epoch = self.share.iters_per_epoch

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.labels)
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(count, generator=generator)
        offsets, flips = draw_crops_and_flips(count, generator)
        order, offsets, flips = order.to(self.device), offsets.to(self.device), flips.to(self.device)
        for step in range(start, self.iters_per_epoch):
            begin, end = self.share.bounds(step)
            index = order[begin:end]
            images = self.normalize(self.images[index])
            if self.augment:
                images = crop_and_flip(images, offsets[index], flips[index])
            yield images, self.labels[index]


class MemoryEvalBatches:
    """A test or validation set in order, unaugmented; this rank's shard (split.eval_shard)."""

    def __init__(
        self, data: ImageSet, normalize: Normalizer, batch_size: int, *, shard: Shard = ONE_CPU_PROCESS
    ):
        part = eval_shard(len(data), shard.rank, shard.world_size)
        self.images = data.images[part.start :: part.step].to(shard.device)
        self.labels = data.labels[part.start :: part.step].to(shard.device)
        self.normalize, self.batch_size = normalize.to(shard.device), batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for begin in range(0, len(self.labels), self.batch_size):
            end = begin + self.batch_size
            yield self.normalize(self.images[begin:end]), self.labels[begin:end]

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)
