"""The streamed backend (data.loader=stream): ImageFolder files read by DataLoader workers, which decode and
crop, or with data.decode=gpu only read the bytes for nvJPEG to decode a batch at a time. A training batch
travels as uint8 (a quarter of float32's bytes) from pinned memory, without blocking; lighting, mean
subtraction and scaling run on the device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..config import BadImage, Crops, Decode, FolderData
from ..errors import UserError
from .augment import augment_sample, center_view, scale_views, ten_views, train_transform
from .collate import collate, collate_bytes, split_bytes
from .datasets import dataset
from .files import BadImages, ImageFiles, check_class_count, decode_batch, eval_folder, scan_folder
from .identity import Source, tree_digest
from .normalize import Normalizer
from .sampler import EpochSampler
from .samples import EvalSamples, TrainSamples, make_loader
from .split import ONE_CPU_PROCESS, Shard, Splits, eval_shard
from .stats import InputStats, input_stats


class StreamBackend:
    """The backend of data.loader=stream: an ImageFolder tree (train/, and test/ or val/), file by file."""

    def __init__(self, d: FolderData, root: Path):
        self.d, self.root = d, root
        self.bad_images = BadImages(d.on_bad_image)
        self._tree: Splits[ImageFiles] | None = None

    def splits(self, classes: list[str] | None = None, *, need_train: bool = True) -> Splits[ImageFiles]:
        """With need_train=False (a checkpoint's `classes` label the test set), train/ is not scanned."""
        d = self.d
        if not need_train:
            test = eval_folder(self.root, dataset(d.name).eval_folders)
            return Splits(None, None, scan_folder(test, classes))
        if d.test_resize < d.image_size:
            raise UserError(
                f"data.test_resize={d.test_resize} must be at least data.image_size={d.image_size}"
            )
        train = scan_folder(self.root / "train", classes)
        check_class_count(train, d.num_classes)
        test = scan_folder(eval_folder(self.root, dataset(d.name).eval_folders), train.classes)
        self._tree = Splits(train, None, test)
        return self._tree

    @functools.cached_property
    def _digest(self) -> str:
        """Of the tree as scanned (train/ before the hold-out, and the test split): identity.tree_digest."""
        return tree_digest(self._tree.train.paths + self._tree.test.paths, self.root)

    def source(self) -> Source:
        return Source("files", self._digest)

    def stats(self, train: ImageFiles, *, shard: Shard, run_dir: Path | None = None) -> InputStats:
        """Cached under what they depend on: every file as it is now, and the hold-out."""
        d = self.d
        cache_dirs = [self.root] + ([Path(run_dir)] if run_dir is not None else [])
        return input_stats(
            train, d.image_size, d.test_resize, d.mean_samples, cache_dirs,
            cache_key=f"{self._digest}-val{d.val_size}", workers=d.workers,
            bad_images=self.bad_images, shard=shard,
        )  # fmt: skip

    def train_batches(
        self, train: ImageFiles, normalize: Normalizer, batch_size: int, *, seed: int, shard: Shard
    ) -> StreamTrainBatches:
        d = self.d
        try:
            transform = train_transform(d.augment, d.image_size, tuple(d.scale_range))
        except ValueError as error:
            raise UserError(str(error)) from None
        return StreamTrainBatches(
            train, transform, normalize, batch_size, seed=seed, lighting=d.lighting, decode=d.decode,
            bad_images=self.bad_images, workers=d.workers, shard=shard,
        )  # fmt: skip

    def check_crops(self, crops: Crops) -> None:
        """Every kind of test view is cut from the files."""

    def eval_batches(
        self, images: ImageFiles, normalize: Normalizer, batch_size: int, *, shard: Shard,
        crops: Crops = Crops.center,
    ) -> StreamEvalBatches:  # fmt: skip
        """The test views `crops` (centre, ten crops or multi-scale, Sec. 3.4), `batch_size` views a batch."""
        d = self.d
        views = {
            Crops.center: functools.partial(center_view, resize=d.test_resize, size=d.image_size),
            Crops.ten: functools.partial(ten_views, resize=d.test_resize, size=d.image_size),
            Crops.multiscale: functools.partial(scale_views, scales=list(d.test_scales)),
        }
        views_per_image = {Crops.center: 1, Crops.ten: 10, Crops.multiscale: 2 * len(d.test_scales)}[crops]
        # Multi-scale views differ in size: one image per loader item keeps few tensors (and file descriptors)
        # in flight between the workers and this process; the net scores them one image at a time anyway.
        batch_size = 1 if crops is Crops.multiscale else max(1, batch_size // views_per_image)
        return StreamEvalBatches(
            images, views[crops], normalize, batch_size, shard=shard, workers=d.workers,
            bad_images=self.bad_images,
        )  # fmt: skip


class StreamTrainBatches:
    """One rank's share of each global training batch, read from files and augmented (Sec. 3.4)."""

    def __init__(
        self, files: ImageFiles, transform: Callable, normalize: Normalizer, global_batch: int, *, seed: int,
        shard: Shard = ONE_CPU_PROCESS, lighting: float = 0.0, workers: int = 0, decode: Decode = Decode.cpu,
        bad_images: BadImages | None = None,
    ):  # fmt: skip
        device = shard.device
        self.sampler = EpochSampler(len(files), global_batch, seed=seed, rank=shard.rank,
                                    world_size=shard.world_size)  # fmt: skip
        self.iters_per_epoch = self.sampler.iters_per_epoch
        self.gpu_decode = decode is Decode.gpu
        if self.gpu_decode and (device.type != "cuda" or not torch.cuda.is_available()):
            raise UserError(
                f"data.decode=gpu decodes JPEGs with nvJPEG on a CUDA device, but training runs on {device}"
                f"{'' if torch.cuda.is_available() else ' (no CUDA device is available)'}; use "
                "data.decode=cpu"
            )
        self.transform, self.lighting, self.normalize, self.device = transform, lighting, normalize, device
        self.bad_images = bad_images or BadImages(BadImage.skip)
        dataset = TrainSamples(files, transform, lighting, decode=not self.gpu_decode)
        self.loader = make_loader(
            dataset, workers, device.type == "cuda" and not self.gpu_decode,
            collate_bytes if self.gpu_decode else collate, persistent=True, batch_sampler=self.sampler,
        )  # fmt: skip

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch, start)
        for batch in self.loader:
            images, labels, alphas = self._gpu_batch(*batch) if self.gpu_decode else self._cpu_batch(*batch)
            if not len(labels):
                continue  # every image of this batch was unreadable (and reported)
            yield self.normalize(images, alphas), labels

    def _cpu_batch(self, images, labels, alphas, failures):
        self.bad_images.report(failures)
        if not len(labels):
            return None, labels, None
        move = functools.partial(torch.Tensor.to, device=self.device, non_blocking=True)
        return move(images), move(labels), move(alphas)

    def _gpu_batch(self, datas, labels, seeds, paths):
        decoded = decode_batch(split_bytes(*datas), self.device)
        self.bad_images.report([(p, reason) for p, (image, reason) in zip(paths, decoded) if image is None])
        keep = [i for i, (image, _) in enumerate(decoded) if image is not None]
        if not keep:
            return None, labels[:0], None
        samples = [augment_sample(decoded[i][0], seeds[i], self.transform, self.lighting) for i in keep]
        images = torch.stack([image for image, _ in samples])
        alphas = torch.stack([alpha for _, alpha in samples]).to(self.device, non_blocking=True)
        return images, labels[keep].to(self.device, non_blocking=True), alphas


class StreamEvalBatches:
    """A test split in file order through `view`, rank r taking images r, r + k, ...; yields normalised
    (images, labels) on the device: (B, 3, S, S) for a centre crop, (B, V, 3, S, S) for V crops, or for
    multi-scale views a list (one per image) of lists (one per scale) of (3, H, W)."""

    def __init__(
        self, files: ImageFiles, view: Callable, normalize: Normalizer, batch_size: int, *,
        shard: Shard = ONE_CPU_PROCESS, workers: int = 0, bad_images: BadImages | None = None,
    ):  # fmt: skip
        self.normalize, self.device = normalize, shard.device
        self.bad_images = bad_images or BadImages(BadImage.skip)
        self.loader = make_loader(
            EvalSamples(files, view), workers, shard.device.type == "cuda", collate,
            batch_size=batch_size, sampler=eval_shard(len(files), shard.rank, shard.world_size),
        )  # fmt: skip

    def __iter__(self) -> Iterator[tuple]:
        for views, labels, _, failures in self.loader:
            self.bad_images.report(failures)
            if not len(labels):
                continue
            labels = labels.to(self.device, non_blocking=True)
            if isinstance(views, torch.Tensor):
                yield self.normalize(views.to(self.device, non_blocking=True)), labels
            else:
                yield [[self.normalize(v.to(self.device)) for v in scales] for scales in views], labels

    def __len__(self) -> int:
        return len(self.loader)
