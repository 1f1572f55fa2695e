"""Normalisation (data/normalize.py): a view of another size subtracts the resized mean image."""

from __future__ import annotations

import torch
from imagetree import CPU, tiny_stats

from resnet_train.config import Normalize
from resnet_train.data.normalize import Normalizer


def test_a_view_of_another_size_subtracts_the_resized_mean_image():
    stats = tiny_stats(4)
    stats.mean_image = torch.arange(48, dtype=torch.float32).view(3, 4, 4)
    normalize = Normalizer(stats, Normalize.mean_image, CPU)
    out = normalize(torch.zeros(3, 8, 12, dtype=torch.uint8))
    expected = -torch.nn.functional.interpolate(stats.mean_image[None], size=(8, 12), mode="bilinear")[0]
    assert out.shape == (3, 8, 12) and torch.allclose(out, expected)
    stats.mean_image = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 4, 4)
    out = Normalizer(stats, Normalize.mean_image, CPU)(torch.zeros(3, 8, 12, dtype=torch.uint8))
    assert torch.allclose(out, -torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 8, 12))
