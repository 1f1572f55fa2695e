"""The training set's input statistics (Sec. 3.4: "the per-pixel mean subtracted"), computed once and cached.

The mean is taken over a fixed (seed 0) sample of training images, each resized to its test-time size and
centre-cropped to data.image_size, so every run and rank computes the same mean image, of a training crop's
size. The cache file sits beside the data when that folder is writable, else in the run directory; it is keyed
on the training files (identity.tree_digest) and the hold-out and named after the settings, so any changed
image or setting recomputes it.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, fields
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
    """In pixel units: the per-pixel mean image, per-channel mean and std, and the std over all pixels."""

    mean_image: torch.Tensor  # (3, S, S) float32
    channel_mean: torch.Tensor  # (3,)
    channel_std: torch.Tensor  # (3,)
    pixel_std: float
    samples: int

    @classmethod
    def fit(cls, images: torch.Tensor, chunk: int = 4096) -> InputStats:
        """Of a whole uint8 (N, 3, H, W) set held in memory (the CIFAR backend: every training image)."""
        sums = PixelSums(tuple(images.shape[1:]))
        for start in range(0, len(images), chunk):
            sums.add(images[start : start + chunk])
        return sums.stats()

    def state_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict) -> InputStats:
        return cls(state["mean_image"].float(), state["channel_mean"].float(), state["channel_std"].float(),
                   float(state["pixel_std"]), int(state["samples"]))  # fmt: skip


class PixelSums:
    """Float64 sums over (B, 3, H, W) batches: per-pixel sum, per-channel sum of squares, image count."""

    def __init__(self, shape: tuple[int, ...]):  # (3, H, W)
        self.total = torch.zeros(shape, dtype=torch.float64)
        self.squares = torch.zeros(shape[0], dtype=torch.float64)
        self.count = 0

    def add(self, images: torch.Tensor) -> None:
        pixels = images.double()
        self.total += pixels.sum(dim=0)
        self.squares += pixels.square().sum(dim=(0, 2, 3))
        self.count += len(images)

    def add_across_ranks(self, device: torch.device) -> None:
        flat = torch.cat([self.total.flatten(), self.squares, torch.tensor([float(self.count)])])
        sums, size = all_reduce_sum(flat.to(device)).cpu(), self.total.numel()
        self.total, self.squares, self.count = sums[:size].view_as(self.total), sums[size:-1], int(sums[-1])

    def stats(self) -> InputStats:
        count, total, square_total = self.count, self.total.double(), self.squares.double()
        pixels = count * total[0].numel()
        mean_image = total / count
        channel_mean = total.sum(dim=(1, 2)) / pixels
        channel_var = square_total / pixels - channel_mean**2
        pixel_var = square_total.sum() / (3 * pixels) - (total.sum() / (3 * pixels)) ** 2
        mean, std = channel_mean.float(), channel_var.clamp_min(1e-6).sqrt().float()
        return InputStats(mean_image.float(), mean, std, float(pixel_var.clamp_min(1e-6).sqrt()), count)


def sample_indices(count: int, samples: int) -> list[int]:
    """The training images the statistics are taken over: a fixed random `samples` of `count`, sorted."""
    if samples >= count:
        return list(range(count))
    chosen = torch.randperm(count, generator=torch.Generator().manual_seed(0))[:samples]
    return chosen.sort().values.tolist()


def load_cached(folders: list[Path], name: str, key: str) -> InputStats | None:
    """The statistics in the first of `folders` holding a valid file for the training set `key` identifies."""
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
    """Of a fixed sample of training images (centre views), each rank reading its share."""
    chosen = sample_indices(len(files), samples)[shard.rank :: shard.world_size]
    view = functools.partial(center_view, resize=resize, size=image_size)
    loader = make_loader(EvalSamples(files.subset(chosen), view), workers, False, collate, batch_size=64)
    sums = PixelSums((3, image_size, image_size))
    for views, labels, _, failures in loader:
        bad_images.report(failures)
        if len(labels):
            sums.add(views)
    sums.add_across_ranks(shard.device)
    if not sums.count:
        raise UserError(f"no readable image among the {samples} sampled from {files.folder}")
    return sums.stats()


def input_stats(
    files: ImageFiles, image_size: int, resize: int, samples: int, cache_dirs: list[Path], *, cache_key: str,
    workers: int, bad_images: BadImages, shard: Shard,
) -> InputStats:  # fmt: skip
    """The statistics cached under `cache_key` (the training files' identity), or computed and cached."""
    name = f"input_stats_{image_size}px_resize{resize}_n{min(samples, len(files))}.pt"
    stats = load_cached(cache_dirs, name, cache_key)
    if not any_rank(stats is None, shard.device):
        return stats
    log.info("computing the mean image over %d training images", min(samples, len(files)))
    stats = compute_input_stats(files, image_size, resize, samples, workers=workers, bad_images=bad_images,
                                shard=shard)  # fmt: skip
    if shard.rank == 0:
        save_cached(stats, cache_dirs, name, cache_key)
    return stats
