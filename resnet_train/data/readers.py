"""Readers that turn a dataset on disk (or a seed) into uint8 image tensors held in memory.

CIFAR is small (150 MB as uint8), so the whole set is decoded once and served from memory: from the official
python archives through torchvision, or from an ImageFolder tree of image files (such as the CIFAR-10 JPEG
tree), decoded in batches by torchvision.io.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets
from torchvision.datasets.utils import check_integrity

from ..config import DatasetName
from ..errors import UserError
from .files import check_class_count, decode_all, eval_folder, label_index, scan_folder
from .identity import Source, archive_source, files_source, generated_source
from .split import Splits


@dataclass
class ImageSet:
    """Images as a uint8 tensor (N, C, H, W) with int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]  # the names the labels index
    paths: list[str] | None = None  # the image files, for a set read from an ImageFolder tree

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: list[int]) -> ImageSet:
        paths = None if self.paths is None else [self.paths[i] for i in index]
        return ImageSet(self.images[index], self.labels[index], self.classes, paths)

    def relabel(self, classes: list[str], where: str) -> ImageSet:
        """The same images labelled by their class names' positions in `classes` (a checkpoint's)."""
        index = label_index(self.classes, classes, where)
        lookup = torch.tensor([index[name] for name in self.classes], dtype=torch.int64)
        return ImageSet(self.images, lookup[self.labels], list(classes), self.paths)


OFFICIAL = {
    # name: (torchvision class, extracted folder, archive)
    "cifar10": (datasets.CIFAR10, "cifar-10-batches-py", "cifar-10-python.tar.gz"),
    "cifar100": (datasets.CIFAR100, "cifar-100-python", "cifar-100-python.tar.gz"),
}


def is_image_tree(root: Path) -> bool:
    """Whether `root` holds an ImageFolder tree (train/ and test/), which is read rather than an archive."""
    return (root / "train").is_dir() and (root / "test").is_dir()


def read_cifar(name: str, root: str | Path, download: bool, num_classes: int) -> tuple[ImageSet, ImageSet]:
    """The (train, test) sets of CIFAR-10/100 from `root`: an official archive, its extracted folder, or an
    ImageFolder tree with train/ and test/. Anything else is one clear error, never other data."""
    root = Path(root)
    cls, folder, archive = OFFICIAL[name]
    if is_image_tree(root):
        train = read_image_folder(root / "train", num_classes)
        return train, read_image_folder(root / "test", num_classes, train.classes)
    if (root / "train").is_dir() and not (root / folder).is_dir() and not (root / archive).is_file():
        raise UserError(f"{root / 'test'} is missing: an ImageFolder tree needs test/ beside train/")
    if (root / folder).is_dir():
        missing = [f for f, _ in cls.train_list + cls.test_list if not (root / folder / f).is_file()]
        if missing:
            raise UserError(f"{name} at {root / folder} is incomplete: missing {', '.join(missing)}")
    elif not (root / archive).is_file() and not download:
        raise UserError(
            f"{name} not found under {root.resolve()}: looked for {folder}/, {archive} and an ImageFolder "
            f"tree (train/ and test/). Either set data.download=true to fetch the official archive, or point "
            f"data.root=DIR at a folder that holds one of them."
        )
    corrupt = (
        not (root / folder).is_dir()
        and (root / archive).is_file()
        and not check_integrity(str(root / archive), cls.tgz_md5)
    )
    if corrupt and not download:  # torchvision would fetch a new copy over it: not without data.download
        raise UserError(
            f"{root / archive} is corrupt (its MD5 is not the official archive's): replace it with an intact "
            f"copy, or delete it and set data.download=true to fetch it again"
        )
    fetching = download and not (root / folder).is_dir() and (corrupt or not (root / archive).is_file())
    try:
        # With the archive present (md5 checked), download=True only extracts it.
        train = cls(str(root), train=True, download=download or not (root / folder).is_dir())
        test = cls(str(root), train=False, download=False)
    except (RuntimeError, OSError) as error:
        if fetching:
            raise UserError(
                f"could not download {name} into {root.resolve()} ({error}); without a network, put "
                f"{archive} there, or point data.root=DIR at a folder holding it or an ImageFolder tree"
            ) from None
        raise UserError(f"could not read {name} under {root}: {error}") from None
    return _from_arrays(train), _from_arrays(test)


def _from_arrays(dataset) -> ImageSet:
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return ImageSet(images, torch.tensor(dataset.targets, dtype=torch.int64), list(dataset.classes))


def read_image_folder(
    folder: str | Path, num_classes: int | None, classes: list[str] | None = None
) -> ImageSet:
    """Decode every image of an ImageFolder tree (one sub-folder per class; see files.scan_folder, which
    labels an evaluation tree by the training set's `classes`).

    All images must have one size (as CIFAR's do); images of varied sizes go through the streamed loader.
    """
    files = scan_folder(folder, classes)
    check_class_count(files, num_classes)
    images = decode_all(files.paths)
    size = images[0].shape
    for path, image in zip(files.paths, images):
        if image.shape != size:
            raise UserError(
                f"{path} is {image.shape[2]}x{image.shape[1]}, but {files.paths[0]} is {size[2]}x{size[1]}: "
                f"an in-memory image tree needs one size (the streamed loader, data.loader=stream, resizes)"
            )
    labels = torch.tensor(files.labels, dtype=torch.int64)
    return ImageSet(torch.stack(images), labels, files.classes, files.paths)


def synthetic(
    num_classes: int, size: int, train_size: int, test_size: int, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Class-conditional random images that a small net learns gradually, never perfectly.

    Each class has a smooth pattern; each image is its class's pattern at a random contrast, on top of a
    random smooth background of about the same strength and pixel noise. So the classes overlap, and a
    ResNet-8 on 16x16 images goes from about 65% to about 25% test error over its first 200 iterations
    (batch 64) instead of separating them at once. A tenth of the labels (train and test
    alike) are redrawn at random, so no net gets below about 9% test error: a curve that reaches zero means
    something is wrong."""
    contrast_low, contrast_high, clutter, noise, label_noise = 0.25, 0.75, 0.4, 0.15, 0.1
    generator = torch.Generator().manual_seed(seed)
    interpolate = torch.nn.functional.interpolate

    def smooth(count: int) -> torch.Tensor:  # random fields with 4x4 degrees of freedom, zero mean
        coarse = torch.rand(count, 3, 4, 4, generator=generator) - 0.5
        return interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    patterns = smooth(num_classes)

    def draw(count: int) -> ImageSet:
        labels = torch.randint(num_classes, (count,), generator=generator)
        contrast = torch.empty(count, 1, 1, 1).uniform_(contrast_low, contrast_high, generator=generator)
        images = 0.5 + contrast * patterns[labels] + clutter * smooth(count)
        images = images + noise * torch.randn(count, 3, size, size, generator=generator)
        relabel = torch.rand(count, generator=generator) < label_noise
        labels = torch.where(relabel, torch.randint(num_classes, (count,), generator=generator), labels)
        return ImageSet((images.clamp(0, 1) * 255).round().to(torch.uint8), labels, classes)

    classes = [f"class{i}" for i in range(num_classes)]
    return draw(train_size), draw(test_size)


def read_splits(
    name: DatasetName, root: Path, *, download: bool = False, num_classes: int | None = None,
    image_size: int = 32, train_size: int = 5000, test_size: int = 1000,
) -> tuple[Splits[ImageSet], Source]:  # fmt: skip
    """A dataset read into memory (its training set whole: split.Splits.held_out holds out a validation set),
    and what identifies its images."""
    if name in (DatasetName.cifar10, DatasetName.cifar100):
        expected = num_classes or (10 if name is DatasetName.cifar10 else 100)
        train, test = read_cifar(name.value, root, download, expected)
    elif name is DatasetName.synthetic:
        if not num_classes:
            raise UserError("data=synthetic needs data.num_classes")
        train, test = synthetic(num_classes, image_size, train_size, test_size)
    elif name is DatasetName.imagefolder:
        train = read_image_folder(root / "train", num_classes)
        test = read_image_folder(eval_folder(root, name), num_classes, train.classes)  # test/, else val/
    else:
        raise UserError(f"data={name.value} is not served from memory; use the streamed loader")
    return Splits(train, None, test, name is DatasetName.synthetic), _source(name, root, train, test)


def load_splits(
    name: DatasetName, root: str | Path, *, download: bool = False, num_classes: int | None = None,
    image_size: int = 32, val_size: int = 0, train_size: int = 5000, test_size: int = 1000,
) -> Splits[ImageSet]:  # fmt: skip
    """Read a dataset into memory, holding out `val_size` training images as a validation set."""
    splits, _ = read_splits(
        name, Path(root), download=download, num_classes=num_classes, image_size=image_size,
        train_size=train_size, test_size=test_size,
    )  # fmt: skip
    return splits.held_out(val_size)


def _source(name: DatasetName, root: Path, train: ImageSet, test: ImageSet) -> Source:
    """What identifies the images read: a tree's files, the official archive, or the generated pixels."""
    if train.paths is not None:
        return files_source(train.paths + test.paths, root)
    if name is DatasetName.synthetic:
        return generated_source(train.images, train.labels, test.images, test.labels)
    return archive_source(OFFICIAL[name.value][0])
