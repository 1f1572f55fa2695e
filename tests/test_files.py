"""Image files (data/files.py): an unreadable image is named and skipped or refused (a corrupt PNG too, which
torchvision's decoder would crash on), and which folder is the test split."""

from __future__ import annotations

import io
import logging
import os

import numpy as np
import pytest
import torch
from imagetree import CLASSES, CPU, tiny_stats
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from resnet_train.config import Augment, BadImage, Normalize
from resnet_train.data import dataset
from resnet_train.data.augment import train_transform
from resnet_train.data.files import BadImages, decode_rgb, eval_folder, scan_folder
from resnet_train.data.normalize import Normalizer
from resnet_train.data.stream import StreamTrainBatches
from resnet_train.errors import UserError


@pytest.fixture
def tree_with_a_corrupt_jpeg(tree, tmp_path):
    root = tmp_path / "corrupt"
    for path in scan_folder(tree / "train").paths[:4]:
        target = root / "train" / os.path.relpath(path, tree / "train")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(open(path, "rb").read())
    bad = root / "train" / CLASSES[0] / "truncated.JPEG"
    bad.write_bytes(open(path, "rb").read()[:300])
    return root, bad


def test_a_corrupt_jpeg_is_named_and_skipped_or_refused(tree_with_a_corrupt_jpeg, caplog):
    root, bad = tree_with_a_corrupt_jpeg
    files = scan_folder(root / "train")
    transform = train_transform(Augment.paper, 32, (36, 48))
    normalize = Normalizer(tiny_stats(32), Normalize.mean_image, CPU)
    skip = BadImages(BadImage.skip)
    batches = StreamTrainBatches(files, transform, normalize, 5, seed=0, bad_images=skip)
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        for _ in range(2):
            ((images, labels),) = list(batches.epoch(0))
    assert images.shape[0] == labels.shape[0] == 4  # the batch goes on without the unreadable image
    assert skip.count == 1 and skip.paths == [str(bad)]
    warnings = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "1 unreadable" in warnings[0]  # named once, not every epoch
    refuse = BadImages(BadImage.error)
    batches = StreamTrainBatches(files, transform, normalize, 5, seed=0, bad_images=refuse)
    with pytest.raises(UserError, match=f"unreadable image {bad}"):
        list(batches.epoch(0))


def test_test_split_folder(tmp_path):
    imagenet, folder = (dataset(name).eval_folders for name in ("imagenet", "imagefolder"))
    (tmp_path / "val").mkdir()
    assert eval_folder(tmp_path, imagenet) == tmp_path / "val"
    assert eval_folder(tmp_path, folder) == tmp_path / "val"
    (tmp_path / "test").mkdir()
    assert eval_folder(tmp_path, folder) == tmp_path / "test"
    assert eval_folder(tmp_path, imagenet) == tmp_path / "val"  # ImageNet's test labels are not public
    with pytest.raises(UserError, match="val/"):
        eval_folder(tmp_path / "test", imagenet)


def _encoded(image, fmt: str) -> torch.Tensor:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def test_a_corrupt_png_is_a_reason_not_a_crash_and_other_formats_read_as_image_folder_reads_them():
    pixels = np.random.RandomState(0).randint(0, 256, (40, 40, 3), dtype=np.uint8)
    png = _encoded(Image.fromarray(pixels), "PNG")
    flipped = png.clone()
    flipped[50::7] ^= 0xFF  # torchvision's own PNG decoder ends the process on this file (a segfault)
    for corrupt in (flipped, png[:60]):
        image, reason = decode_rgb(corrupt)
        assert image is None and reason
    # A valid PNG decodes to the pixels torchvision's decoder gives (the numbers of a PNG tree are unchanged),
    # and BMP, TIFF and PPM, which ImageFolder lists, are read.
    for mode in ("RGB", "RGBA", "L", "P"):
        data = _encoded(Image.fromarray(pixels).convert(mode), "PNG")
        assert torch.equal(decode_rgb(data)[0], decode_image(data, mode=ImageReadMode.RGB))
    for fmt in ("BMP", "TIFF", "PPM"):
        image, reason = decode_rgb(_encoded(Image.fromarray(pixels), fmt))
        assert reason == "" and torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1))
