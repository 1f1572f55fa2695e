"""The training set's input statistics (the paper's mean image), computed once and cached as a file.

Sec. 3.4: "the per-pixel mean subtracted". The mean is taken over a bounded sample of training images (every
image for a small set): each image is resized to its test-time size (shorter side data.test_resize) and
centre-cropped to data.image_size, so the mean image has the size of a training crop. The sample is fixed
(seed 0), so every run and every rank computes the same statistics. The cache file sits beside the data when
that folder is writable, else in the run directory. It is keyed on the training files (their relative paths,
sizes and bytes: identity.tree_digest) and the hold-out, and named after the settings, so any added, removed,
renamed or changed image, or another setting, recomputes it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..engine.distributed import all_reduce_sum, any_rank
from ..errors import UserError
from ..outputs import atomic_output
from .augment import center_view
from .collate import collate
from .files import BadImages, ImageFiles
from .samples import EvalSamples, make_loader
from .split import Shard

log = logging.getLogger("resnet_train")

CACHE_FORMAT = 2  # 1 was keyed on the image count alone


@dataclass
class InputStats:
    """Training-set statistics of images resized to test_resize and centre-cropped to image_size, in pixel
    units: the per-pixel mean image, per-channel mean and std, and the std over all pixels."""

    mean_image: torch.Tensor  # (3, S, S) float32
    channel_mean: torch.Tensor  # (3,)
    channel_std: torch.Tensor  # (3,)
    pixel_std: float
    samples: int

    @classmethod
    def from_sums(cls, total: torch.Tensor, square_total: torch.Tensor, count: int) -> InputStats:
        """From the per-pixel sum (3, S, S) and per-channel sum of squares (3,) over `count` images."""
        total = total.double()
        pixels = count * total[0].numel()
        mean_image = total / count
        channel_mean = total.sum(dim=(1, 2)) / pixels
        channel_var = square_total.double() / pixels - channel_mean**2
        pixel_var = square_total.double().sum() / (3 * pixels) - (total.sum() / (3 * pixels)) ** 2
        return cls(
            mean_image.float(),
            channel_mean.float(),
            channel_var.clamp_min(1e-6).sqrt().float(),
            float(pixel_var.clamp_min(1e-6).sqrt()),
            count,
        )

    @classmethod
    def fit(cls, images: torch.Tensor, chunk: int = 4096) -> InputStats:
        """Of a whole uint8 (N, 3, H, W) set held in memory (the CIFAR backend: every training image)."""
        sums = PixelSums(tuple(images.shape[1:]))
        for start in range(0, len(images), chunk):
            sums.add(images[start : start + chunk])
        return sums.stats()

    def state_dict(self) -> dict:
        return {
            "mean_image": self.mean_image,
            "channel_mean": self.channel_mean,
            "channel_std": self.channel_std,
            "pixel_std": self.pixel_std,
            "samples": self.samples,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> InputStats:
        return cls(
            state["mean_image"].float(),
            state["channel_mean"].float(),
            state["channel_std"].float(),
            float(state["pixel_std"]),
            int(state["samples"]),
        )


class PixelSums:
    """The float64 sums the statistics come from, over batches of (B, 3, H, W) images: the per-pixel sum, the
    per-channel sum of squares and the image count. Flattened into one tensor, they add across ranks."""

    def __init__(self, shape: tuple[int, ...]):  # (3, H, W)
        self.total = torch.zeros(shape, dtype=torch.float64)
        self.squares = torch.zeros(shape[0], dtype=torch.float64)
        self.count = 0

    def add(self, images: torch.Tensor) -> None:
        pixels = images.double()
        self.total += pixels.sum(dim=0)
        self.squares += pixels.square().sum(dim=(0, 2, 3))
        self.count += len(images)

    def flat(self) -> torch.Tensor:
        return torch.cat([self.total.flatten(), self.squares, torch.tensor([float(self.count)])])

    def load_flat(self, sums: torch.Tensor) -> None:
        """Take the sums back from `flat()`'s layout (after adding them across ranks)."""
        size = self.total.numel()
        self.total, self.squares = sums[:size].view_as(self.total), sums[size:-1]
        self.count = int(sums[-1])

    def stats(self) -> InputStats:
        return InputStats.from_sums(self.total, self.squares, self.count)


def sample_indices(count: int, samples: int) -> list[int]:
    """The training images the statistics are taken over: a fixed random `samples` of `count`, sorted."""
    if samples >= count:
        return list(range(count))
    chosen = torch.randperm(count, generator=torch.Generator().manual_seed(0))[:samples]
    return chosen.sort().values.tolist()


def cache_name(image_size: int, resize: int, samples: int) -> str:
    return f"input_stats_{image_size}px_resize{resize}_n{samples}.pt"


def load_cached(folders: list[Path], name: str, key: str) -> InputStats | None:
    """The statistics cached in the first of `folders` that holds a valid file for the training set `key`
    identifies."""
    for folder in folders:
        path = folder / name
        if not path.is_file():
            continue
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
            if cached.get("format") == CACHE_FORMAT and cached.get("key") == key:
                log.info("input statistics from %s", path)
                return InputStats.from_state_dict(cached["stats"])
        except Exception as error:  # a truncated or foreign file: recompute rather than fail the run
            log.warning("ignoring the statistics cache %s: %s", path, error)
    return None


def save_cached(stats: InputStats, folders: list[Path], name: str, key: str) -> Path | None:
    """Write the cache into the first writable folder (atomically); None when none is writable."""
    state = {"format": CACHE_FORMAT, "key": key, "stats": stats.state_dict()}
    for folder in folders:
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as partial:
                torch.save(state, partial)
        except (OSError, UserError):
            continue
        log.info("input statistics cached in %s", path)
        return path
    log.warning("could not cache the input statistics in %s", ", ".join(map(str, folders)))
    return None


def compute_input_stats(
    files: ImageFiles, image_size: int, resize: int, samples: int, *, workers: int, bad_images: BadImages,
    shard: Shard,
) -> InputStats:  # fmt: skip
    """The statistics of a fixed sample of training images (centre views); each rank reads its share and the
    sums are added across ranks."""
    chosen = sample_indices(len(files), samples)[shard.rank :: shard.world_size]
    view = functools.partial(center_view, resize=resize, size=image_size)
    loader = make_loader(EvalSamples(files.subset(chosen), view), workers, False, collate, batch_size=64)
    sums = PixelSums((3, image_size, image_size))
    for views, labels, _, failures in loader:
        bad_images.report(failures)
        if len(labels):
            sums.add(views)
    sums.load_flat(all_reduce_sum(sums.flat().to(shard.device)).cpu())
    if not sums.count:
        raise UserError(f"no readable image among the {samples} sampled from {files.folder}")
    return sums.stats()


def input_stats(
    files: ImageFiles, image_size: int, resize: int, samples: int, cache_dirs: list[Path], *, cache_key: str,
    workers: int, bad_images: BadImages, shard: Shard,
) -> InputStats:  # fmt: skip
    """Load the statistics cached under `cache_key` (what identifies the training files), or compute and
    cache them (every rank computes a share)."""
    name = cache_name(image_size, resize, min(samples, len(files)))
    stats = load_cached(cache_dirs, name, cache_key)
    if not any_rank(stats is None, shard.device):
        return stats
    log.info("computing the mean image over %d training images", min(samples, len(files)))
    stats = compute_input_stats(
        files, image_size, resize, samples, workers=workers, bad_images=bad_images, shard=shard
    )
    if shard.rank == 0:
        save_cached(stats, cache_dirs, name, cache_key)
    return stats
