"""The one way from a data config to batches: `build_data` for training and `build_eval_set` for the tools
that evaluate stored weights. The data root is resolved and the backend (`memory` or `stream`) looked up here,
once; the hold-out, identity, normalisation and channels_last layout are the same for both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..config import Crops, DataConfig, Loader
from ..errors import UserError
from .files import BadImages, ImageFiles
from .identity import Source, data_identity
from .interface import ChannelsLastEval, ChannelsLastTrain, RunData
from .memory import MemoryBackend
from .normalize import Normalizer
from .split import ONE_CPU_PROCESS, Shard, Splits
from .stats import InputStats
from .stream import StreamBackend

log = logging.getLogger("resnet_train")

BACKENDS: dict[Loader, type] = {Loader.memory: MemoryBackend, Loader.stream: StreamBackend}


def data_root(d: DataConfig) -> Path:
    """data.root, `~` expanded: the one place the data package resolves it (generated sets have none)."""
    return Path(getattr(d, "root", "")).expanduser()


def build_data(
    d: DataConfig, *, batch_size: int, eval_batch_size: int, seed: int, shard: Shard = ONE_CPU_PROCESS,
    channels_last: bool = False, run_dir: Path | None = None,
) -> RunData:  # fmt: skip
    """Training batches (`batch_size` is the global batch; this rank gets its share) and the centre-view
    evaluation sets ("test", and "val" with data.val_size > 0; `eval_batch_size` is this rank's, each rank
    evaluating its shard). `run_dir` holds the streamed mean-image cache when the data folder is read-only."""
    backend = BACKENDS[d.loader](d, data_root(d))
    splits = backend.splits().held_out(d.val_size)
    identity = _identity(d, splits, backend.source())
    stats = backend.stats(splits.train, shard=shard, run_dir=run_dir)
    normalize = Normalizer(stats, d.normalize, shard.device)
    train = backend.train_batches(splits.train, normalize, batch_size, seed=seed, shard=shard)
    evals = {
        split: backend.eval_batches(images, normalize, eval_batch_size, shard=shard, crops=Crops.center)
        for split, images in splits.evals().items()
    }
    if channels_last:  # the net's memory format, set on the inputs in this one place
        train, evals = ChannelsLastTrain(train), {split: ChannelsLastEval(b) for split, b in evals.items()}
    return RunData(train, evals, splits.classes, stats, identity, splits.synthetic)


def _identity(d: DataConfig, splits: Splits, source: Source) -> dict:
    """The data's identity, with the image count per split said once in the log."""
    val = len(splits.val) if splits.val is not None else 0
    images = {"train": len(splits.train), "val": val, "test": len(splits.test)}
    held_out = f", {images['val']} validation" if splits.val is not None else ""
    log.info(
        "%s: %d classes, %d training%s and %d test images", d.name, splits.num_classes,
        images["train"], held_out, images["test"],
    )  # fmt: skip
    return data_identity(d.name, splits.classes, images, source)


@dataclass
class EvalSet:
    """One evaluation split for a tool: its batches, image count, folder (None in memory) and the unreadable
    images met (counted while the batches are consumed)."""

    batches: Any
    images: int
    folder: str | None
    bad_images: BadImages


def build_eval_set(
    d: DataConfig, *, stats: InputStats, classes: list[str], split: str = "test",
    crops: Crops = Crops.center, batch_size: int, device: torch.device,
) -> EvalSet:  # fmt: skip
    """The `split` ("test" or "val") of the dataset `d`, normalised with `stats` and labelled by `classes`
    (a checkpoint's), seen through `crops`: centre, ten crops or multi-scale for a streamed set (Sec. 3.4);
    an in-memory set is tested on the original images only (Sec. 4.2). Nothing is downloaded."""
    backend = BACKENDS[d.loader](replace(d, download=False) if hasattr(d, "download") else d, data_root(d))
    backend.check_crops(crops)
    need_train = split == "val"  # the held-out images are the training set's; else only test/ is read
    splits = backend.splits(classes, need_train=need_train).held_out(d.val_size if need_train else 0)
    images = splits.evals().get(split)
    if images is None:
        raise UserError("the run held out no validation set (data.val_size=0); use the test split")
    normalize = Normalizer(stats, d.normalize, device)
    batches = backend.eval_batches(images, normalize, batch_size, shard=Shard(device), crops=crops)
    folder = images.folder if isinstance(images, ImageFiles) else None  # a set in memory names no folder
    return EvalSet(batches, len(images), folder, backend.bad_images)
