"""Streamed ImageFolder data (data.loader=stream): DataLoader workers decode and crop, the device normalises.

A training batch travels as uint8 (a quarter of float32's bytes), from pinned memory, without blocking; the
lighting noise, mean subtraction and scaling run on the device (augment.DeviceNormalize). With
data.decode=gpu the workers only read file bytes and nvJPEG decodes the whole batch on the GPU, where the
same torchvision transforms then resize and crop.

The batch objects follow the in-memory loader's interface: `TrainBatches.epoch(epoch, start)` yields one
rank's share of each global batch, and an eval set is an iterable of (images, labels) on the device.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from ..config import BadImage, DataConfig, Decode
from ..errors import UserError
from .augment import DeviceNormalize, augment_sample, center_view, train_transform
from .batches import VAL_SPLIT_SEED, epoch_generator
from .folder import BadImages, ImageFiles, check_class_count, decode_rgb, eval_folder, read_bytes, scan_folder
from .stats import InputStats, cache_name, load_cached, sample_indices, save_cached

log = logging.getLogger("resnet_train")


class EpochSampler:
    """Batch sampler: rank r's part of each global batch of epoch `epoch`, from batch `start` on.

    The epoch's order and one seed per image are drawn from (seed, epoch); rank r takes the r-th equal part of
    every global batch, as the in-memory loader does. Resuming at `start` skips start x global_batch images
    without reading them. The last partial global batch is dropped (the schedule counts iterations).
    """

    def __init__(self, count: int, global_batch: int, *, seed: int, rank: int = 0, world_size: int = 1):
        if global_batch % world_size:
            raise UserError(f"batch size {global_batch} does not divide among {world_size} processes")
        if count < global_batch:
            raise UserError(f"the training set has {count} images, fewer than one batch of {global_batch}")
        self.count, self.global_batch, self.local_batch = count, global_batch, global_batch // world_size
        self.seed, self.rank = seed, rank
        self.iters_per_epoch = count // global_batch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.iters_per_epoch - self.start, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.count, generator=generator)
        seeds = torch.randint(0, 2**62, (self.count,), generator=generator)
        for step in range(self.start, self.iters_per_epoch):
            begin = step * self.global_batch + self.rank * self.local_batch
            end = begin + self.local_batch
            yield list(zip(order[begin:end].tolist(), seeds[begin:end].tolist()))


class TrainSamples(Dataset):
    """One training image from (index, seed): decoded and augmented (decode=cpu), or its bytes only."""

    def __init__(self, files: ImageFiles, transform: Callable, lighting: float, decode: bool):
        self.files, self.transform, self.lighting, self.decode = files, transform, lighting, decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        path, label = self.files.paths[index], self.files.labels[index]
        data = read_bytes(path)
        if not self.decode:
            return data, label, seed, path
        image, reason = decode_rgb(data)
        if image is None:
            return None, label, None, (path, reason)
        image, alpha = augment_sample(image, seed, self.transform, self.lighting)
        return image, label, alpha, None


class EvalSamples(Dataset):
    """One test image through `view` (centre crop, ten crops or the list of scales)."""

    def __init__(self, files: ImageFiles, view: Callable):
        self.files, self.view = files, view

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path, label = self.files.paths[index], self.files.labels[index]
        image, reason = decode_rgb(read_bytes(path))
        if image is None:
            return None, label, None, (path, reason)
        return self.view(image), label, None, None


def collate(items: list) -> tuple:
    """Stack the good samples (a list when views differ in size); the failures go along by name."""
    good = [item for item in items if item[0] is not None]
    failures = [item[3] for item in items if item[0] is None]
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    images = [item[0] for item in good]
    if images and isinstance(images[0], torch.Tensor):
        images = torch.stack(images)
    alphas = torch.stack([item[2] for item in good]) if good and good[0][2] is not None else None
    return images, labels, alphas, failures


def collate_bytes(items: list) -> tuple:
    """The batch's file bytes as one tensor and their lengths (-1: unreadable). One tensor per batch, not one
    per file: each tensor a worker returns costs a shared-memory file descriptor."""
    datas, labels, seeds, paths = zip(*items)
    lengths = torch.tensor([-1 if d is None else d.numel() for d in datas], dtype=torch.int64)
    joined = torch.cat([d for d in datas if d is not None] or [torch.empty(0, dtype=torch.uint8)])
    return (joined, lengths), torch.tensor(labels, dtype=torch.int64), list(seeds), list(paths)


def split_bytes(joined: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor | None]:
    parts = iter(torch.split(joined, [n for n in lengths.tolist() if n >= 0]))
    return [None if n < 0 else next(parts) for n in lengths.tolist()]


def make_loader(
    dataset: Dataset, workers: int, pin: bool, collate_fn: Callable, persistent: bool = False, **sampling
) -> DataLoader:
    """`persistent`: the workers stay alive across epochs (a new epoch only resets the sampler), for the
    training set; evaluation sets start theirs at each evaluation. uint8 batches are pinned when `pin`, for
    an asynchronous copy to the GPU."""
    return DataLoader(
        dataset, num_workers=workers, pin_memory=pin, persistent_workers=persistent and workers > 0,
        prefetch_factor=4 if workers > 0 else None, collate_fn=collate_fn, **sampling,
    )  # fmt: skip


def decode_on_gpu(datas: list[torch.Tensor | None], device: torch.device) -> list[tuple]:
    """Decode a batch of file bytes with nvJPEG in one call; [(image on `device` or None, reason)].

    A batch holding a file nvJPEG refuses (ImageNet has a PNG and CMYK JPEGs among its .JPEG files) or a
    corrupt one is decoded file by file, falling back to the CPU decoder for the refused ones.
    """
    if all(data is not None and data.numel() for data in datas):
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device)
            return [(image, "") for image in images]
        except RuntimeError:
            pass
    results = []
    for data in datas:
        try:
            results.append((decode_jpeg(data, mode=ImageReadMode.RGB, device=device), ""))
        except (RuntimeError, TypeError, ValueError):
            image, reason = decode_rgb(data)
            results.append((None if image is None else image.to(device), reason))
    return results


def check_gpu_decode(device: torch.device) -> None:
    if device.type != "cuda" or not torch.cuda.is_available():
        raise UserError(
            f"data.decode=gpu decodes JPEGs with nvJPEG on a CUDA device, but training runs on {device}"
            f"{'' if torch.cuda.is_available() else ' (no CUDA device is available)'}; use data.decode=cpu"
        )


class StreamTrainBatches:
    """One rank's share of each global training batch, read from files and augmented (Sec. 3.4)."""

    def __init__(
        self,
        files: ImageFiles,
        transform: Callable,
        normalize: DeviceNormalize,
        global_batch: int,
        *,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        lighting: float = 0.0,
        workers: int = 0,
        decode: Decode = Decode.cpu,
        bad_images: BadImages | None = None,
    ):
        self.sampler = EpochSampler(len(files), global_batch, seed=seed, rank=rank, world_size=world_size)
        self.iters_per_epoch = self.sampler.iters_per_epoch
        self.gpu_decode = decode is Decode.gpu
        if self.gpu_decode:
            check_gpu_decode(device)
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
        decoded = decode_on_gpu(split_bytes(*datas), self.device)
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
        self,
        files: ImageFiles,
        view: Callable,
        normalize: DeviceNormalize,
        batch_size: int,
        *,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        bad_images: BadImages | None = None,
    ):
        self.normalize, self.device, self.total = normalize, device, len(files)
        self.bad_images = bad_images or BadImages(BadImage.skip)
        self.loader = make_loader(
            EvalSamples(files, view), workers, device.type == "cuda", collate,
            batch_size=batch_size, sampler=range(rank, len(files), world_size),
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


def compute_input_stats(
    files: ImageFiles, image_size: int, resize: int, samples: int, *, workers: int, bad_images: BadImages,
    device: torch.device, rank: int = 0, world_size: int = 1,
) -> InputStats:  # fmt: skip
    """The statistics of a fixed sample of training images (centre views); each rank reads its share and the
    sums are added across ranks."""
    from ..engine.distributed import all_reduce_sum

    chosen = sample_indices(len(files), samples)[rank::world_size]
    view = functools.partial(center_view, resize=resize, size=image_size)
    loader = make_loader(EvalSamples(files.subset(chosen), view), workers, False, collate, batch_size=64)
    total = torch.zeros(3, image_size, image_size, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    for views, labels, _, failures in loader:
        bad_images.report(failures)
        if len(labels):
            pixels = views.double()
            total += pixels.sum(dim=0)
            squares += pixels.square().sum(dim=(0, 2, 3))
            count += len(labels)
    sums = all_reduce_sum(torch.cat([total.flatten(), squares, torch.tensor([float(count)])]).to(device))
    sums = sums.cpu()
    total, squares, count = sums[: total.numel()].view_as(total), sums[total.numel() : -1], int(sums[-1])
    if not count:
        raise UserError(f"no readable image among the {samples} sampled from {files.folder}")
    return InputStats.from_sums(total, squares, count)


def input_stats(
    files: ImageFiles, d: DataConfig, cache_dirs: list[Path], *, bad_images: BadImages, device: torch.device,
    rank: int = 0, world_size: int = 1,
) -> InputStats:  # fmt: skip
    """Load the cached statistics, or compute and cache them (every rank computes a share)."""
    from ..engine.distributed import any_rank

    name = cache_name(d.image_size, d.test_resize, min(d.mean_samples, len(files)))
    stats = load_cached(cache_dirs, name, len(files))
    if not any_rank(stats is None, device):
        return stats
    log.info("computing the mean image over %d training images", min(d.mean_samples, len(files)))
    stats = compute_input_stats(
        files, d.image_size, d.test_resize, d.mean_samples, workers=d.workers, bad_images=bad_images,
        device=device, rank=rank, world_size=world_size,
    )  # fmt: skip
    if rank == 0:
        save_cached(stats, cache_dirs, name, len(files))
    return stats


@dataclass
class StreamData:
    train: StreamTrainBatches
    evals: dict[str, StreamEvalBatches]
    classes: list[str]
    stats: InputStats
    bad_images: BadImages

    def checkpoint_state(self) -> dict:
        """What evaluation needs besides the weights: the class names (labels) and the input statistics."""
        return {"input": {"classes": list(self.classes), "stats": self.stats.state_dict()}}


def build_stream_data(
    d: DataConfig, batch_size: int, eval_batch_size: int, *, seed: int, device: torch.device,
    rank: int = 0, world_size: int = 1, channels_last: bool = False, run_dir: Path | None = None,
) -> StreamData:  # fmt: skip
    """Training batches and the centre-crop evaluation sets ("test", and "val" with data.val_size > 0)."""
    if d.test_resize < d.image_size:
        raise UserError(f"data.test_resize={d.test_resize} must be at least data.image_size={d.image_size}")
    root = Path(d.root).expanduser()
    train_files = scan_folder(root / "train")
    check_class_count(train_files, d.num_classes)
    test_files = scan_folder(eval_folder(root, d.name), train_files.classes)
    bad_images = BadImages(d.on_bad_image)
    splits = {"test": test_files}
    if d.val_size:
        if not 0 < d.val_size < len(train_files):
            raise UserError(f"data.val_size={d.val_size} must be between 0 and {len(train_files)} (train/)")
        order = torch.randperm(len(train_files), generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
        splits["val"] = train_files.subset(order[: d.val_size].sort().values.tolist())
        train_files = train_files.subset(order[d.val_size :].sort().values.tolist())
    cache_dirs = [root] + ([Path(run_dir)] if run_dir is not None else [])
    stats = input_stats(
        train_files, d, cache_dirs, bad_images=bad_images, device=device, rank=rank, world_size=world_size
    )
    normalize = DeviceNormalize(stats, d.normalize, device, channels_last)
    shard = {"device": device, "rank": rank, "world_size": world_size, "workers": d.workers}
    try:
        transform = train_transform(d.augment, d.image_size, tuple(d.scale_range))
    except ValueError as error:
        raise UserError(str(error)) from None
    train = StreamTrainBatches(
        train_files, transform, normalize, batch_size, seed=seed, lighting=d.lighting, decode=d.decode,
        bad_images=bad_images, **shard,
    )  # fmt: skip
    view = functools.partial(center_view, resize=d.test_resize, size=d.image_size)
    evals = {
        split: StreamEvalBatches(files, view, normalize, eval_batch_size, bad_images=bad_images, **shard)
        for split, files in splits.items()
    }
    return StreamData(train, evals, train_files.classes, stats, bad_images)
