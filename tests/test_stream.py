"""The streamed loader (data/stream.py) on a generated ImageFolder tree: uint8 crops normalised, the same
batches with workers, and GPU decoding (refused without CUDA; on CUDA, close to CPU decoding)."""

from __future__ import annotations

import pytest
import torch
from imagetree import CPU, tiny_stats

from resnet_train.config import Augment, Decode, Normalize
from resnet_train.data import Shard
from resnet_train.data.augment import train_transform
from resnet_train.data.files import scan_folder
from resnet_train.data.normalize import Normalizer
from resnet_train.data.stream import StreamTrainBatches
from resnet_train.errors import UserError


def test_training_batches_are_uint8_crops_normalised_and_the_same_with_workers(tree):
    files = scan_folder(tree / "train")
    transform = train_transform(Augment.paper, 32, (36, 48))
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    common = {"seed": 0, "lighting": 0.1}
    serial = StreamTrainBatches(files, transform, normalize, 4, workers=0, **common)
    parallel = StreamTrainBatches(files, transform, normalize, 4, workers=2, **common)
    assert serial.iters_per_epoch == 3
    first = list(serial.epoch(1))
    assert [x.shape for x, _ in first] == [(4, 3, 32, 32)] * 3 and first[0][0].dtype == torch.float32
    for (x, y), (x2, y2) in zip(first, parallel.epoch(1)):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    resumed = list(serial.epoch(1, start=2))
    assert len(resumed) == 1 and torch.equal(resumed[0][0], first[2][0])


def test_gpu_decode_without_cuda_is_refused_clearly(tree):
    files = scan_folder(tree / "train")
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    transform = train_transform(Augment.paper, 32, (36, 48))
    with pytest.raises(UserError, match="data.decode=gpu.*data.decode=cpu"):
        StreamTrainBatches(files, transform, normalize, 4, seed=0, decode=Decode.gpu)


@pytest.mark.parametrize("cuda", [False, True])
def test_gpu_decode_off_a_cuda_device_says_whether_one_exists(tree, monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    files = scan_folder(tree / "train")
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    transform = train_transform(Augment.paper, 32, (36, 48))
    with pytest.raises(UserError, match="but training runs on cpu") as refused:
        StreamTrainBatches(files, transform, normalize, 4, seed=0, decode=Decode.gpu)
    assert ("(no CUDA device is available)" in str(refused.value)) is not cuda


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_decode_matches_cpu_decode(tree):
    cuda = torch.device("cuda")
    files = scan_folder(tree / "train")
    normalize = Normalizer(tiny_stats(224), Normalize.mean_image, cuda)
    transform = train_transform(Augment.paper, 224, (256, 480))
    cpu_path = StreamTrainBatches(
        files, transform, normalize, 4, seed=0, shard=Shard(cuda), decode=Decode.cpu
    )
    gpu_path = StreamTrainBatches(
        files, transform, normalize, 4, seed=0, shard=Shard(cuda), decode=Decode.gpu
    )
    for (x, y), (x2, y2) in zip(cpu_path.epoch(0), gpu_path.epoch(0)):
        assert x2.device.type == "cuda" and x2.shape == x.shape == (4, 3, 224, 224) and torch.equal(y, y2)
        assert (x - x2).abs().mean() < 3.0  # same crops; nvJPEG and the float resize differ by a few levels
