"""A generated ImageFolder tree of real JPEG files of varied sizes and aspect ratios (the `tree` fixture in
conftest.py), and small input statistics for it."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from resnet_train.data.stats import InputStats

CPU = torch.device("cpu")
SIZES = [(500, 375), (375, 500), (320, 240), (640, 360), (300, 300), (260, 400)]  # (width, height)
CLASSES = ["n01", "n02", "n03"]


def write_jpeg(path, width, height, colour, seed):
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=85)


def write_tree(root):
    """train/<class>/ 4 JPEGs each, val/<class>/ 2 each, of varied sizes and aspect ratios."""
    for split, count in (("train", 4), ("val", 2)):
        for c, name in enumerate(CLASSES):
            for i in range(count):
                width, height = SIZES[(c * count + i) % len(SIZES)]
                colour = (60 * c + 40, 120, 200 - 60 * c)
                write_jpeg(root / split / name / f"{name}_{i}.JPEG", width, height, colour, seed=c * 10 + i)
    return root


def tiny_stats(size):
    return InputStats(torch.full((3, size, size), 128.0), torch.full((3,), 128.0), torch.ones(3), 1.0, 1)
