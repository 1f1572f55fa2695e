"""Datasets: readers from disk or a seed into memory, and the batchers that serve them to the loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import DatasetName
from ..errors import UserError
from .batches import VAL_SPLIT_SEED, EvalBatches, Normalizer, TrainBatches
from .folder import eval_folder
from .readers import ImageSet, read_cifar, read_image_folder, synthetic

__all__ = ["EvalBatches", "ImageSet", "Normalizer", "Splits", "TrainBatches", "load_splits"]


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    num_classes: int
    synthetic: bool


def load_splits(
    name: DatasetName,
    root: str,
    *,
    download: bool = False,
    num_classes: int | None = None,
    image_size: int = 32,
    val_size: int = 0,
    train_size: int = 5000,
    test_size: int = 1000,
) -> Splits:
    """Read a dataset into memory and hold out `val_size` training images as a validation set (the paper's
    45k/5k protocol for choosing hyper-parameters; the test set is never used to choose anything)."""
    if name in (DatasetName.cifar10, DatasetName.cifar100):
        expected = num_classes or (10 if name is DatasetName.cifar10 else 100)
        train, test = read_cifar(name.value, root, download, expected)
    elif name is DatasetName.synthetic:
        if not num_classes:
            raise UserError("data=synthetic needs data.num_classes")
        train, test = synthetic(num_classes, image_size, train_size, test_size)
    elif name is DatasetName.imagefolder:
        train = read_image_folder(f"{root}/train", num_classes)
        test = read_image_folder(eval_folder(root, name), num_classes)  # test/, else val/
    else:
        raise UserError(f"data={name.value} is not served from memory; use the ImageFolder loader")
    classes = num_classes or int(train.labels.max()) + 1
    val = None
    if val_size:
        if not 0 < val_size < len(train):
            raise UserError(f"data.val_size={val_size} must be between 0 and {len(train)} (the training set)")
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        train, val = (
            train.subset(order[val_size:].sort().values),
            train.subset(order[:val_size].sort().values),
        )
    return Splits(train, val, test, classes, name is DatasetName.synthetic)
