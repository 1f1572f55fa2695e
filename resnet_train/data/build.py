"""The one way from a data config to batches: `build_data` for training (training batches, evaluation sets,
class names and input statistics) and `build_eval_set` for the tools that evaluate stored weights.

Both backends share the hold-out and sharding (split.py), scanning and decoding (files.py) and normalisation
(normalize.py); they differ only in where images live: `memory` (decoded once, held on the device) or
`stream` (read from files batch by batch).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Crops, DataConfig, Loader
from ..errors import UserError
from .augment import center_view, scale_views, ten_views, train_transform
from .files import BadImages, ImageFiles, check_class_count, eval_folder, scan_folder
from .identity import Source, TreeDigests, data_identity, tree_digests
from .interface import SINGLE_PROCESS, Collectives, EvalBatches, RunData
from .memory import MemoryEvalBatches, MemoryTrainBatches
from .normalize import Normalizer
from .readers import load_splits
from .split import ONE_CPU_PROCESS, Shard, hold_out
from .stats import InputStats, input_stats
from .stream import StreamEvalBatches, StreamTrainBatches

log = logging.getLogger("resnet_train")


def build_data(
    d: DataConfig, *, batch_size: int, eval_batch_size: int, seed: int, shard: Shard = ONE_CPU_PROCESS,
    channels_last: bool = False, run_dir: Path | None = None, collectives: Collectives = SINGLE_PROCESS,
) -> RunData:  # fmt: skip
    """Training batches (`batch_size` is the global batch; this rank gets its share) and the centre-view
    evaluation sets ("test", and "val" with data.val_size > 0). `run_dir` holds the streamed mean-image cache
    when the data folder is read-only; `collectives` sums the statistics across ranks."""
    if d.loader is Loader.memory:
        splits = _memory_splits(d, download=d.download)
        identity = _identity(d, splits.classes, splits.source, splits.train, splits.val, splits.test)
        stats = InputStats.fit(splits.train.images)
        normalize = Normalizer(stats, d.normalize, shard.device)
        train = MemoryTrainBatches(
            splits.train, normalize, batch_size, seed=seed, shard=shard, channels_last=channels_last
        )
        sets = {"test": splits.test, "val": splits.val}
        evals = {
            split: MemoryEvalBatches(
                images, normalize, eval_batch_size, shard=shard, channels_last=channels_last
            )
            for split, images in sets.items()
            if images is not None
        }
        return RunData(train, evals, splits.classes, stats, identity, splits.synthetic)
    root = Path(d.root).expanduser()
    tree = _stream_tree(d)
    train_files, files_by_split = _hold_out_files(d, tree)
    identity = _identity(
        d, train_files.classes, tree.source, train_files, files_by_split.get("val"), files_by_split["test"]
    )
    bad_images = BadImages(d.on_bad_image)
    cache_dirs = [root] + ([Path(run_dir)] if run_dir is not None else [])
    stats = input_stats(
        train_files, d.image_size, d.test_resize, d.mean_samples, cache_dirs, cache_key=tree.cache_key(d),
        workers=d.workers, bad_images=bad_images, shard=shard, collectives=collectives,
    )  # fmt: skip
    normalize = Normalizer(stats, d.normalize, shard.device, channels_last)
    try:
        transform = train_transform(d.augment, d.image_size, tuple(d.scale_range))
    except ValueError as error:
        raise UserError(str(error)) from None
    train = StreamTrainBatches(
        train_files, transform, normalize, batch_size, seed=seed, lighting=d.lighting, decode=d.decode,
        bad_images=bad_images, workers=d.workers, shard=shard,
    )  # fmt: skip
    view = functools.partial(center_view, resize=d.test_resize, size=d.image_size)
    evals = {
        split: StreamEvalBatches(
            files, view, normalize, eval_batch_size, bad_images=bad_images, workers=d.workers, shard=shard
        )
        for split, files in files_by_split.items()
    }
    return RunData(train, evals, train_files.classes, stats, identity)


def _identity(d: DataConfig, classes: list[str], source: Source, train, val, test) -> dict:
    """The data's identity (identity.py), with the image count per split said once in the log."""
    images = {"train": len(train), "val": len(val) if val is not None else 0, "test": len(test)}
    held_out = f", {images['val']} validation" if val is not None else ""
    log.info(
        "%s: %d classes, %d training%s and %d test images", d.name.value, len(classes), images["train"],
        held_out, images["test"],
    )  # fmt: skip
    return data_identity(d.name.value, classes, images, source)


def _memory_splits(d: DataConfig, download: bool):
    return load_splits(
        d.name, d.root, download=download, num_classes=d.num_classes, image_size=d.image_size,
        val_size=d.val_size, train_size=d.train_size, test_size=d.test_size,
    )  # fmt: skip


@dataclass
class StreamTree:
    """A streamed ImageFolder tree as scanned: train/ (before the hold-out) and the test split folder under
    `root`, and digests of their files (one `stat` each, taken when first asked for)."""

    root: Path
    train: ImageFiles
    test: ImageFiles

    @functools.cached_property
    def digests(self) -> TreeDigests:
        return tree_digests(self.train.paths + self.test.paths, self.root)

    @property
    def source(self) -> Source:
        return Source("files", self.digests.content)

    def cache_key(self, d: DataConfig) -> str:
        """What the training-set statistics depend on: every file as it is now, and the hold-out."""
        return f"{self.digests.version}-val{d.val_size}"


def _stream_tree(d: DataConfig, classes: list[str] | None = None) -> StreamTree:
    if d.test_resize < d.image_size:
        raise UserError(f"data.test_resize={d.test_resize} must be at least data.image_size={d.image_size}")
    root = Path(d.root).expanduser()
    train_files = scan_folder(root / "train", classes)
    check_class_count(train_files, d.num_classes)
    test_files = scan_folder(eval_folder(root, d.name), train_files.classes)
    return StreamTree(root, train_files, test_files)


def _hold_out_files(d: DataConfig, tree: StreamTree) -> tuple[ImageFiles, dict[str, ImageFiles]]:
    """train/ less the held-out images, and the evaluation splits ("test", and "val" with data.val_size)."""
    train_files, splits = tree.train, {"test": tree.test}
    if d.val_size:
        kept, held = hold_out(len(train_files), d.val_size, "train/")
        train_files, splits["val"] = train_files.subset(kept), train_files.subset(held)
    return train_files, splits


@dataclass
class EvalSet:
    """One evaluation split for a tool: its batches, how many images it holds, where they were read from and
    the unreadable ones met (counted while the batches are consumed)."""

    batches: EvalBatches
    images: int
    folder: str | None
    bad_images: BadImages


def build_eval_set(
    d: DataConfig, *, stats: InputStats | None, classes: list[str] | None, split: str = "test",
    crops: Crops = Crops.center, batch_size: int, device: torch.device,
) -> EvalSet:  # fmt: skip
    """The `split` ("test" or "val") of the dataset `d`, normalised with `stats` (a checkpoint's; None: fit
    them to the training set, as training did). Streamed sets are labelled by `classes` and seen through
    `crops` (centre, ten crops or multi-scale, Sec. 3.4); in-memory sets are tested on the original images
    only (Sec. 4.2)."""
    bad_images = BadImages(d.on_bad_image)
    if d.loader is Loader.memory:
        if crops is not Crops.center:
            raise UserError(
                f"eval.crops={crops.value} needs a streamed dataset (data.loader=stream); {d.name.value} is "
                f"tested on the original images only (Sec. 4.2): use eval.crops=center"
            )
        splits = _memory_splits(d, download=False)
        images = splits.val if split == "val" else splits.test
        if images is None:
            raise UserError("the run held out no validation set (data.val_size=0); use the test split")
        if classes is not None:  # label by the checkpoint's class names, as a streamed tree is
            images = images.relabel(classes, d.root)
        stats = stats or InputStats.fit(splits.train.images)
        normalize = Normalizer(stats, d.normalize, device)
        batches = MemoryEvalBatches(images, normalize, batch_size, shard=Shard(device))
        return EvalSet(batches, len(images), None, bad_images)
    if split == "val" or classes is None or stats is None:  # the held-out images, or inputs from train/
        tree = _stream_tree(d, classes)
        train_files, files_by_split = _hold_out_files(d, tree)
    else:  # the checkpoint's classes and statistics: train/ is not needed
        root = Path(d.root).expanduser()
        train_files, files_by_split = None, {"test": scan_folder(eval_folder(root, d.name), classes)}
    if split not in files_by_split:
        raise UserError("the run held out no validation set (data.val_size=0); use the test split")
    if stats is None:
        stats = input_stats(
            train_files, d.image_size, d.test_resize, d.mean_samples, [Path(d.root).expanduser()],
            cache_key=tree.cache_key(d), workers=d.workers, bad_images=bad_images, shard=Shard(),
            collectives=SINGLE_PROCESS,
        )  # fmt: skip
    files = files_by_split[split]
    views = {
        Crops.center: functools.partial(center_view, resize=d.test_resize, size=d.image_size),
        Crops.ten: functools.partial(ten_views, resize=d.test_resize, size=d.image_size),
        Crops.multiscale: functools.partial(scale_views, scales=list(d.test_scales)),
    }
    views_per_image = {Crops.center: 1, Crops.ten: 10, Crops.multiscale: 2 * len(d.test_scales)}[crops]
    # Multi-scale views differ in size: one image per loader item keeps few tensors (and file descriptors) in
    # flight between the workers and this process; the net scores them one image at a time anyway.
    batch_size = 1 if crops is Crops.multiscale else max(1, batch_size // views_per_image)
    batches = StreamEvalBatches(
        files, views[crops], Normalizer(stats, d.normalize, device), batch_size, shard=Shard(device),
        workers=d.workers, bad_images=bad_images,
    )  # fmt: skip
    return EvalSet(batches, len(files), files.folder, bad_images)
