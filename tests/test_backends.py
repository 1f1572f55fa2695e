"""The two data backends behind one interface: on the same image tree they hold out the same images, fit the
same statistics and identify the same data; the channels_last layout is set in one place for both."""

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_train.config import FolderData, Loader
from resnet_train.data import BACKENDS, Shard, build_data


@pytest.fixture
def tree(tmp_path):
    """Two classes of 8x8 PNGs: 7 training and 2 test images each."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 7), ("test", 2)):
        for name in ("ant", "bee"):
            for i in range(count):
                path = tmp_path / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return tmp_path


def data_config(root, loader: Loader, **changes) -> FolderData:
    settings = dict(
        name="imagefolder", root=str(root), loader=loader, num_classes=2, image_size=8,
        test_resize=8, scale_range=[8, 8], mean_samples=100, val_size=4, workers=0,
    )  # fmt: skip
    return FolderData(**{**settings, **changes})


def test_both_backends_hold_out_the_same_images_and_fit_the_same_statistics(tree):
    found = {}
    for loader, backend_class in BACKENDS.items():
        backend = backend_class(data_config(tree, loader), tree)
        splits = backend.splits().held_out(4)
        stats = backend.stats(splits.train, shard=Shard())
        found[loader] = splits, stats, backend.source()
    (memory, memory_stats, memory_source), (stream, stream_stats, stream_source) = found.values()

    assert len(memory.val) == 4 and len(memory.train) == 10
    assert memory.val.paths == stream.val.paths and memory.train.paths == stream.train.paths
    assert memory.classes == stream.classes == ["ant", "bee"]
    assert memory_source == stream_source
    # The same sums of the same pixels: equal to the bit, and the mean image is the training images' mean.
    for key, value in memory_stats.state_dict().items():
        other = stream_stats.state_dict()[key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, key
    expected = memory.train.images.double().mean(dim=0).float()
    assert torch.allclose(memory_stats.mean_image, expected) and memory_stats.samples == 10


@pytest.mark.parametrize("loader", list(Loader))
@pytest.mark.parametrize("channels_last", [False, True])
def test_batches_of_either_backend_come_in_the_layout_asked_for(tree, tmp_path, loader, channels_last):
    data = build_data(
        data_config(tree, loader), batch_size=4, eval_batch_size=4, seed=0, channels_last=channels_last,
        run_dir=tmp_path / "run",
    )  # fmt: skip
    train_images, _ = next(data.train.epoch(0))
    test_images, _ = next(iter(data.evals["val"]))
    for images in (train_images, test_images):
        assert images.shape[1:] == (3, 8, 8)
        assert images.is_contiguous(memory_format=torch.channels_last) is channels_last
        assert images.is_contiguous() is not channels_last


@pytest.mark.parametrize("loader", list(Loader))
@pytest.mark.parametrize("world_size", [1, 3])
def test_an_evaluation_sets_length_is_the_batches_it_yields(tree, tmp_path, loader, world_size):
    """What resnet-plan multiplies one timed evaluation batch by."""
    data = build_data(
        data_config(tree, loader), batch_size=3, eval_batch_size=3, seed=0, channels_last=True,
        shard=Shard(torch.device("cpu"), 0, world_size), run_dir=tmp_path / "run",
    )  # fmt: skip
    for split, batches in data.evals.items():  # val: 4 images, test: 4 images; rank 0 of 3 holds 2 of each
        assert len(batches) == sum(1 for _ in batches) == (2 if world_size == 1 else 1), split
