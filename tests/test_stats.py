"""The input statistics (data/stats.py): the mean image and channel statistics of known images, and the cache
of the mean image of a generated ImageFolder tree of JPEGs of varied sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from imagetree import CLASSES, CPU
from PIL import Image

from resnet_train.config import BadImage, Normalize
from resnet_train.data import Shard
from resnet_train.data.files import BadImages, scan_folder
from resnet_train.data.normalize import Normalizer
from resnet_train.data.stats import compute_input_stats, load_cached, save_cached


def test_mean_image_and_channel_statistics_of_known_images(tmp_path):
    # Two 6x6 PNGs (lossless) per class; resize 6 and crop 6 leave them as they are.
    ramp = torch.arange(36, dtype=torch.float64).view(6, 6)
    images = [
        torch.stack([ramp, ramp * 2, torch.full((6, 6), 10.0)]),
        torch.stack([ramp.flip(1), ramp * 3, torch.full((6, 6), 30.0)]),
        torch.stack([ramp.T, ramp, torch.full((6, 6), 50.0)]),
    ]
    for i, image in enumerate(images):
        path = tmp_path / "train" / CLASSES[i % 2] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy().astype(np.uint8)).save(path)
    files = scan_folder(tmp_path / "train")
    stats = compute_input_stats(
        files,
        6,
        6,
        100,
        workers=0,
        bad_images=BadImages(BadImage.error),
        shard=Shard(),
    )
    stack = torch.stack(images)
    assert torch.allclose(stats.mean_image.double(), stack.mean(dim=0), atol=1e-4)
    assert torch.allclose(stats.channel_mean.double(), stack.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(
        stats.channel_std.double(), stack.transpose(0, 1).flatten(1).std(1, False), atol=1e-3
    )
    assert stats.pixel_std == pytest.approx(float(stack.std(unbiased=False)), rel=1e-4)
    assert stats.samples == 3
    normalized = Normalizer(stats, Normalize.mean_image, CPU)(stack.to(torch.uint8))
    assert normalized.mean(dim=0).abs().max() < 1e-4  # zero mean at every pixel
    per_channel = Normalizer(stats, Normalize.channel, CPU)(stack.to(torch.uint8))
    assert torch.allclose(per_channel.transpose(0, 1).flatten(1).std(1, False), torch.ones(3), atol=1e-3)


def test_mean_image_of_varied_jpegs_has_the_crop_size_and_is_cached(tree, tmp_path):
    files = scan_folder(tree / "train")
    stats = compute_input_stats(
        files,
        32,
        40,
        5,
        workers=0,
        bad_images=BadImages(BadImage.error),
        shard=Shard(),
    )
    assert stats.mean_image.shape == (3, 32, 32) and stats.samples == 5
    # The data folder unwritable (here: under a file) -> the next folder, the run directory, holds the cache.
    blocked = tmp_path / "file"
    blocked.write_text("")
    path = save_cached(stats, [blocked / "sub", tmp_path / "run"], "stats.pt", len(files))
    assert path == tmp_path / "run" / "stats.pt"
    cached = load_cached([blocked / "sub", tmp_path / "run"], "stats.pt", len(files))
    assert torch.equal(cached.mean_image, stats.mean_image)
    assert load_cached([tmp_path / "run"], "stats.pt", len(files) + 1) is None  # another training set
