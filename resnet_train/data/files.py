"""ImageFolder trees (`root/train/<class>/<image>`, `root/test/...` or `root/val/...`) as lists of files,
and decoding that names (and by choice skips) unreadable images. Labels are the positions of the sorted
training class folders; an evaluation folder is labelled with the training set's classes, by name.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision import datasets
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file
from torchvision.transforms.functional import pil_to_tensor

from ..config import BadImage
from ..errors import UserError

log = logging.getLogger("resnet_train")

IMAGE_EXTENSIONS = datasets.folder.IMG_EXTENSIONS  # what torchvision's ImageFolder reads


@dataclass
class ImageFiles:
    """The image files of one split with their labels, and the class names the labels index."""

    paths: list[str]
    labels: list[int]
    classes: list[str]
    folder: str

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: list[int]) -> ImageFiles:
        paths, labels = [self.paths[i] for i in index], [self.labels[i] for i in index]
        return ImageFiles(paths, labels, self.classes, self.folder)


def scan_folder(folder: str | Path, classes: list[str] | None = None) -> ImageFiles:
    """The images under `folder`, one sub-folder per class, found by torchvision's `make_dataset` (images in
    sub-folders of a class folder belong to that class, said in one warning). With `classes` (the training
    set's) every sub-folder must be one of them and is labelled by its position there; otherwise the sorted
    sub-folders are the classes. Hidden folders and files (`.ipynb_checkpoints`, macOS's `._photo.jpg`) are
    skipped at every level; a class folder without images is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist")
    found = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and entry.name[0] != ".")
    if not found:
        raise UserError(f"{folder} has no class sub-folders (expected {folder}/<class>/<image>)")
    classes = found if classes is None else list(classes)
    index = label_index(found, classes, folder)

    def wanted(path: str) -> bool:
        hidden = os.sep + "." in path[len(str(folder)) :]
        return not hidden and datasets.folder.has_file_allowed_extension(path, IMAGE_EXTENSIONS)

    try:
        samples = datasets.folder.make_dataset(str(folder), index, is_valid_file=wanted)
    except FileNotFoundError as error:
        raise UserError(
            f"{folder}: {error}(image files: {', '.join(IMAGE_EXTENSIONS)}; hidden files do not count): add "
            f"its images or remove the folder"
        ) from None
    nested = sorted({os.path.dirname(path) for path, _ in samples} - {str(folder / name) for name in found})
    if nested:
        log.warning(
            "%s: %d sub-folder(s) of class folders hold images (first: %s); each image counts as one of its "
            "class folder's, as in torchvision's ImageFolder", folder, len(nested), nested[0],
        )  # fmt: skip
    return ImageFiles([path for path, _ in samples], [label for _, label in samples], classes, str(folder))


def label_index(found: list[str], classes: list[str], where: str | Path) -> dict[str, int]:
    """Each name `found`'s position in `classes` (the training set's, or a checkpoint's): labels go by name,
    so a tree with other class folders is refused rather than labelled by position."""
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise UserError(
            f"{where} has class folders that the training set lacks: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} (its classes: {', '.join(classes[:5])}"
            f"{' ...' if len(classes) > 5 else ''})"
        )
    position = {name: i for i, name in enumerate(classes)}
    return {name: position[name] for name in found}


def eval_folder(root: str | Path, choices: tuple[str, ...] = ("test", "val")) -> Path:
    """The test split's folder: the first of `choices` under `root` (ImageNet's is `val/`, its test labels
    are not public)."""
    root = Path(root)
    for choice in choices:
        if (root / choice).is_dir():
            return root / choice
    raise UserError(f"no {' or '.join(c + '/' for c in choices)} folder under {root} (the test split)")


def check_class_count(files: ImageFiles, num_classes: int | None) -> None:
    if num_classes is not None and len(files.classes) != num_classes:
        raise UserError(
            f"{files.folder} has {len(files.classes)} class folders but the config expects {num_classes} "
            f"classes (data.num_classes)"
        )


def read_bytes(path: str) -> torch.Tensor | None:
    """The file's bytes as a uint8 tensor (empty for an empty file), or None when it cannot be read."""
    try:
        return read_file(path)
    except (RuntimeError, OSError):
        if Path(path).is_file() and Path(path).stat().st_size == 0:  # read_file refuses empty files
            return torch.empty(0, dtype=torch.uint8)
        return None


def decode_rgb(data: torch.Tensor | None) -> tuple[torch.Tensor | None, str]:
    """(uint8 (3, H, W) RGB tensor, "") for image bytes (greyscale and CMYK converted), or (None, reason).
    A JPEG is decoded by torchvision; any other format by PIL, as torchvision's ImageFolder reads it:
    torchvision's PNG decoder can crash the process on a corrupt file, and it reads no BMP, TIFF or PPM."""
    if data is None:
        return None, "cannot read the file"
    if data.numel() == 0:
        return None, "empty file"
    if not _is_jpeg(data):
        try:
            with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
                return pil_to_tensor(image.convert("RGB")).contiguous(), ""
        except Image.UnidentifiedImageError:
            return None, "not an image of a format PIL or torchvision reads"
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return None, str(error) or type(error).__name__
    try:
        return decode_image(data, mode=ImageReadMode.RGB), ""
    except (RuntimeError, ValueError) as error:  # the message without its source location (".../x.cpp:171, ")
        lines = str(error).strip().splitlines()
        return None, re.sub(r"^.*\.cpp:\d+,\s*", "", lines[0]) if lines else type(error).__name__


def _is_jpeg(data: torch.Tensor | None) -> bool:  # starts with a JPEG's start-of-image marker
    return data is not None and data[:3].tolist() == [0xFF, 0xD8, 0xFF]


def decode_batch(datas: list[torch.Tensor | None], device: torch.device | None = None) -> list[tuple]:
    """[(uint8 (3, H, W) RGB image or None, reason)] on `device` (None: the CPU). JPEGs are decoded in one
    call (nvJPEG on a CUDA `device`); a batch holding another file (ImageNet has a PNG among its .JPEG
    files), one that call refuses (CMYK JPEGs) or an unreadable one is decoded file by file, on the CPU where
    the device's decoder refuses it."""
    if all(map(_is_jpeg, datas)):
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.RGB, device=device or "cpu")
            return [(image, "") for image in images]
        except RuntimeError:
            pass
    return [_decode_one(data, device) for data in datas]


def _decode_one(data: torch.Tensor | None, device: torch.device | None) -> tuple:
    if device is not None and _is_jpeg(data):
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=device), ""
        except (RuntimeError, TypeError, ValueError):
            pass
    image, reason = decode_rgb(data)
    return (image if image is None or device is None else image.to(device)), reason


def decode_all(paths: list[str], chunk: int = 4096) -> list[torch.Tensor]:
    """Every file as uint8 (3, H, W) RGB; an unreadable image stops with its name (no gaps in memory)."""
    images: list[torch.Tensor] = []
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        for path, (image, reason) in zip(part, decode_batch([read_bytes(path) for path in part])):
            if image is None:
                raise UserError(f"cannot decode image {path}: {reason}")
            images.append(image)
    return images


class BadImages:
    """The unreadable images met: each named in a warning the first time it is skipped, or the run stopped
    with its name (data.on_bad_image=error). Never a crash deep in a worker."""

    def __init__(self, policy: BadImage):
        self.policy, self.paths = policy, []

    def report(self, failures: list[tuple[str, str]]) -> None:
        for path, reason in failures:
            if self.policy is BadImage.error:
                raise UserError(f"unreadable image {path}: {reason} (data.on_bad_image=skip leaves it out)")
            if path not in self.paths:
                self.paths.append(path)
                log.warning(
                    "skipped unreadable image %s: %s (%d unreadable so far; each is left out of every batch)",
                    path, reason, len(self.paths),
                )  # fmt: skip

    @property
    def count(self) -> int:
        return len(self.paths)
