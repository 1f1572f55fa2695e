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
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from ..errors import UserError


@dataclass
class ImageSet:
    """Images as a uint8 tensor (N, C, H, W) with int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


OFFICIAL = {
    # name: (torchvision class, extracted folder, archive)
    "cifar10": (datasets.CIFAR10, "cifar-10-batches-py", "cifar-10-python.tar.gz"),
    "cifar100": (datasets.CIFAR100, "cifar-100-python", "cifar-100-python.tar.gz"),
}


def read_cifar(name: str, root: str | Path, download: bool, num_classes: int) -> tuple[ImageSet, ImageSet]:
    """The (train, test) sets of CIFAR-10/100 from `root`: an official archive, its extracted folder, or an
    ImageFolder tree with train/ and test/. Anything else is one clear error, never other data."""
    root = Path(root).expanduser()
    cls, folder, archive = OFFICIAL[name]
    if (root / "train").is_dir() and (root / "test").is_dir():
        return read_image_folder(root / "train", num_classes), read_image_folder(root / "test", num_classes)
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
    fetching = download and not (root / folder).is_dir() and not (root / archive).is_file()
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
    return ImageSet(images, torch.tensor(dataset.targets, dtype=torch.int64))


def read_image_folder(folder: str | Path, num_classes: int | None) -> ImageSet:
    """Decode every image of an ImageFolder tree (one sub-folder per class, sorted names = labels).

    All images must have one size (as CIFAR's do); images of varied sizes go through the DataLoader path.
    """
    folder = Path(folder)
    try:
        tree = datasets.ImageFolder(str(folder), loader=str)
    except (FileNotFoundError, OSError) as error:
        raise UserError(f"cannot read the image tree {folder}: {error}") from None
    if num_classes is not None and len(tree.classes) != num_classes:
        raise UserError(
            f"{folder} has {len(tree.classes)} class folders but the config expects {num_classes} classes "
            f"(data.num_classes)"
        )
    paths = [path for path, _ in tree.samples]
    images = _decode_all(paths)
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) != 1:
        raise UserError(f"{folder}: images of different sizes {sorted(sizes)[:3]}; expected one size")
    return ImageSet(torch.stack(images), torch.tensor(tree.targets, dtype=torch.int64))


def _decode_all(paths: list[str], chunk: int = 4096) -> list[torch.Tensor]:
    images: list[torch.Tensor] = []
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        data = [read_file(path) for path in part]
        try:
            images.extend(decode_jpeg(data, mode=ImageReadMode.RGB))
        except RuntimeError:
            images.extend(_decode_one(path, raw) for path, raw in zip(part, data))  # PNGs, or a bad file
    return images


def _decode_one(path: str, data: torch.Tensor) -> torch.Tensor:
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as error:
        raise UserError(f"cannot decode image {path}: {str(error).splitlines()[0]}") from None


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
        return ImageSet((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)

    return draw(train_size), draw(test_size)
