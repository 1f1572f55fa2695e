"""Training augmentation and test views (data/augment.py, Sec. 3.4): scale augmentation, AlexNet's lighting,
the per-sample seed, and the 10-crop views of a known image."""

from __future__ import annotations

import pytest
import torch
from imagetree import CPU, tiny_stats

from resnet_train.config import Augment, Normalize
from resnet_train.data.augment import (
    augment_sample,
    center_view,
    lighting_offsets,
    ten_views,
    train_transform,
)
from resnet_train.data.files import decode_rgb, read_bytes, scan_folder
from resnet_train.data.normalize import Normalizer


# ---- augmentation -----------------------------------------------------------------------------------------
def test_scale_augmentation_keeps_the_shorter_side_in_range_and_crops_224(tree):
    transform = train_transform(Augment.paper, 224, (256, 480))
    resize = transform.transforms[0]  # RandomShortestSize: the scale augmentation itself
    shorter_sides = set()
    for index, path in enumerate(scan_folder(tree / "train").paths):
        image, _ = decode_rgb(read_bytes(path))
        height, width = image.shape[1:]
        for seed in range(3):
            torch.manual_seed(index * 3 + seed)
            resized = resize(image)
            shorter = min(resized.shape[1:])
            assert 256 <= shorter <= 480
            assert resized.shape[2] / resized.shape[1] == pytest.approx(width / height, rel=0.01)
            shorter_sides.add(shorter)
            crop, alpha = augment_sample(image, index * 3 + seed, transform, 0.1)
            assert crop.shape == (3, 224, 224) and crop.dtype == torch.uint8 and alpha.shape == (3,)
    assert len(shorter_sides) > 10  # drawn from the whole range, not a few fixed sizes


def test_a_sample_depends_only_on_its_seed():
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    transform = train_transform(Augment.paper, 224, (256, 480))
    torch.manual_seed(123)
    first = augment_sample(image, 7, transform, 0.1)
    state = torch.get_rng_state()
    second = augment_sample(image, 7, transform, 0.1)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator is untouched
    assert not torch.equal(first[0], augment_sample(image, 8, transform, 0.1)[0])


def test_inception_crop_option():
    transform = train_transform(Augment.inception, 224, (256, 480))
    crop, _ = augment_sample(torch.zeros(3, 100, 300, dtype=torch.uint8), 0, transform, 0.0)
    assert crop.shape == (3, 224, 224)


def test_lighting_adds_alexnets_pca_offsets():
    alphas = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    offsets = lighting_offsets(alphas)
    expected = 0.2175 * torch.tensor([-0.5675, -0.5808, -0.5836]) * 255  # lambda_1 * p_1, in pixel units
    assert torch.allclose(offsets[0], expected, atol=1e-4) and torch.equal(offsets[1], torch.zeros(3))
    normalize = Normalizer(tiny_stats(4), Normalize.mean_image, CPU)
    images = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    out = normalize(images, alphas)
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-4) and torch.equal(out[1], torch.zeros(3, 4, 4))


# ---- test views -------------------------------------------------------------------------------------------
def test_ten_crop_gives_the_corners_centre_and_their_flips_of_a_known_image():
    image = torch.arange(3 * 8 * 10).view(3, 8, 10).to(torch.uint8)  # shorter side 8 = resize: no resize
    views = ten_views(image, resize=8, size=4)
    assert views.shape == (10, 3, 4, 4)
    flipped = image.flip(-1)
    expected = []
    for source in (image, flipped):
        expected += [
            source[:, 0:4, 0:4],  # top left
            source[:, 0:4, 6:10],  # top right
            source[:, 4:8, 0:4],  # bottom left
            source[:, 4:8, 6:10],  # bottom right
            source[:, 2:6, 3:7],  # centre
        ]
    for view, want in zip(views, expected):
        assert torch.equal(view, want)
    # The five crops of the flip are the flips of the five crops (corners swap sides).
    assert torch.equal(views[5], views[1].flip(-1)) and torch.equal(views[9], views[4].flip(-1))
    assert torch.equal(center_view(image, 8, 4), views[4])
