"""Readers that turn a dataset on disk (the official CIFAR archives or an ImageFolder tree), or a seed, into
uint8 image tensors held in memory (CIFAR is 150 MB as uint8)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets.utils import check_integrity

from ..config import ArchiveData, DataConfig, FolderData, Loader, SyntheticData
from ..errors import UserError
from .datasets import dataset, is_image_tree
from .files import check_class_count, decode_all, eval_folder, label_index, scan_folder
from .identity import Source, archive_source, generated_source, tree_digest
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


def read_archive(cls, root: str | Path, download: bool, num_classes: int) -> tuple[ImageSet, ImageSet]:
    """The (train, test) sets of a CIFAR-style torchvision archive (`cls`: CIFAR10, CIFAR100) from `root`:
    the official archive, its extracted folder (torchvision checks every file's MD5), or an ImageFolder tree
    with train/ and test/. Anything else is one clear error, never other data."""
    root, name = Path(root), cls.__name__.lower()
    extracted, archive = (root / cls.base_folder).is_dir(), root / cls.filename
    if is_image_tree(root):
        train = read_image_folder(root / "train", num_classes)
        return train, read_image_folder(root / "test", num_classes, train.classes)
    if (root / "train").is_dir() and not extracted and not archive.is_file():
        raise UserError(f"{root / 'test'} is missing: an ImageFolder tree needs test/ beside train/")
    missing = [f for f, _ in cls.train_list + cls.test_list if not (root / cls.base_folder / f).is_file()]
    if extracted and missing:
        raise UserError(f"{name} at {root / cls.base_folder} is incomplete: missing {', '.join(missing)}")
    if archive.is_file() and not (extracted or download or check_integrity(str(archive), cls.tgz_md5)):
        raise UserError(  # torchvision would fetch a new copy over it: not without data.download
            f"{archive} is corrupt (its MD5 is not the official archive's): replace it with an intact copy, "
            f"or delete it and set data.download=true to fetch it again"
        )
    try:  # with the archive present (MD5 checked), download=True only extracts it
        train = cls(str(root), train=True, download=download or (archive.is_file() and not extracted))
        test = cls(str(root), train=False, download=False)
    except (RuntimeError, OSError) as error:
        raise UserError(
            f"{name} not found under {root.resolve()} ({error}): data.root=DIR must hold {cls.base_folder}/, "
            f"{cls.filename} or an ImageFolder tree (train/ and test/); data.download=true fetches it"
        ) from None
    return _from_arrays(train), _from_arrays(test)


def _from_arrays(dataset) -> ImageSet:
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return ImageSet(images, torch.tensor(dataset.targets, dtype=torch.int64), list(dataset.classes))


def read_image_folder(folder: Path, num_classes: int | None, classes: list[str] | None = None) -> ImageSet:
    """Every image of an ImageFolder tree (files.scan_folder), decoded: all of one size (as CIFAR's)."""
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


def synthetic(num_classes: int, size: int, train_size: int, test_size: int) -> tuple[ImageSet, ImageSet]:
    """Class-conditional random images that a small net learns gradually, never perfectly.

    Each class has a smooth pattern; each image is its class's pattern at a random contrast, on top of a
    random smooth background of about the same strength and pixel noise. So the classes overlap, and a
    ResNet-8 on 16x16 images goes from about 65% to about 25% test error over its first 200 iterations
    (batch 64) instead of separating them at once. A tenth of the labels (train and test alike) are redrawn
    at random, so no net gets below about 9% test error: a curve reaching zero means something is wrong."""
    contrast_low, contrast_high, clutter, noise, label_noise = 0.25, 0.75, 0.4, 0.15, 0.1
    generator = torch.Generator().manual_seed(0)
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


def read_splits(d: DataConfig, root: Path) -> tuple[Splits[ImageSet], Source]:
    """The dataset of `d` read into memory (nothing held out yet), and what identifies its images."""
    entry = dataset(d.name)
    if entry.torchvision is not None:
        train, test = read_archive(entry.torchvision, root, d.download, d.num_classes or entry.num_classes)
    elif entry.read is not None:
        train, test = entry.read(d, root)
    else:
        train = read_image_folder(root / "train", d.num_classes)
        test = read_image_folder(eval_folder(root, entry.eval_folders), d.num_classes, train.classes)
    if train.paths is not None:  # every split's files, before any hold-out
        source = Source("files", tree_digest(train.paths + test.paths, root))
    elif entry.torchvision is not None:
        source = archive_source(entry.torchvision)
    else:  # generated, or read by a reader of one's own: the pixels themselves
        source = generated_source(train.images, train.labels, test.images, test.labels)
    return Splits(train, None, test, entry.generated), source


def load_splits(name: str, root: str | Path = "", *, val_size: int = 0, **settings) -> Splits[ImageSet]:
    """Read the dataset `name` into memory, holding out `val_size` training images as a validation set;
    `settings` are those of its data option (num_classes, download, train_size, ...)."""
    entry = dataset(name)
    if entry.generated:
        d = SyntheticData(name=name, **settings)
    elif entry.torchvision is not None or entry.read is not None:
        d = ArchiveData(name=name, root=str(root), **settings)
    else:
        d = FolderData(name=name, root=str(root), loader=Loader.memory, **settings)
    splits, _ = read_splits(d, Path(root))
    return splits.held_out(val_size)
