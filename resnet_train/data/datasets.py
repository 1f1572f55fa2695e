"""The datasets, in one registry (`DATASETS`): what each is read from and the few facts the rest of the tool
asks (`data.name` is never tested anywhere else). `data.name` may also be a dotted path to a `Dataset` of
one's own (`data.name=mylab.datasets.svhn`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from torchvision import datasets

from ..config import (
    ArchiveData,
    DataConfig,
    Decode,
    FolderData,
    Loader,
    default_of,
    locate,
    override_text,
    walk,
)
from ..errors import UserError


@dataclass(frozen=True)
class Dataset:
    """One dataset, held in memory or read from an ImageFolder tree under data.root.

    - `torchvision`: a CIFAR-style torchvision archive class (CIFAR10, CIFAR100), read whole into memory;
      or `read(data_config, root) -> (train, test)` ImageSets of one's own (an SVHN, say); or neither: an
      ImageFolder tree, read by either loader;
    - `num_classes`, `image_size`: what an archive fixes (None: the config sets them);
    - `eval_folders`: a tree's test folders, in the order they are looked for;
    - `generated`: the images are made, not read (every log line says so)."""

    torchvision: type | None = None
    read: Callable | None = None
    num_classes: int | None = None
    image_size: int | None = None
    eval_folders: tuple[str, ...] = ("test", "val")
    generated: bool = False


def _synthetic(d, root: Path):
    from .readers import synthetic

    return synthetic(d.num_classes, d.image_size, d.train_size, d.test_size)


DATASETS: dict[str, Dataset] = {
    "cifar10": Dataset(datasets.CIFAR10, num_classes=10, image_size=32),
    "cifar100": Dataset(datasets.CIFAR100, num_classes=100, image_size=32),
    "synthetic": Dataset(read=_synthetic, generated=True),
    "imagefolder": Dataset(),
    "imagenet": Dataset(eval_folders=("val",)),  # its val/ is the set the paper reports
}


def dataset(name: str) -> Dataset:
    """The registry's entry for `data.name`, or the entry of one's own a dotted path names."""
    if name in DATASETS:
        return DATASETS[name]
    if "." not in name:
        raise UserError(f"data.name={name} is none of {', '.join(DATASETS)} nor a dotted path to a Dataset")
    entry = locate(name, "data.name")
    if not isinstance(entry, Dataset):
        raise UserError(f"data.name={name} is a {type(entry).__name__}, not a resnet_train.data.Dataset")
    return entry


def is_image_tree(root: Path) -> bool:
    """Whether `root` holds train/ and test/, read rather than an archive."""
    return (root / "train").is_dir() and (root / "test").is_dir()


def data_problems(d: DataConfig, on_cuda: bool) -> list[str]:
    """One sentence for each data setting that has no effect on this run (it must hold its default); the
    keys of other data options never get here, their schemas refuse them."""
    entry, problems = dataset(d.name), []
    if isinstance(d, FolderData) and d.loader is Loader.memory:
        common = {f"data.{f.name}" for f in fields(DataConfig)} | {"data.root", "data.loader"}
        for key, value, f in walk(d, "data."):
            if key not in common and value != default_of(f):
                problems.append(
                    f"{key}={override_text(value)} has no effect with data.loader=memory: every image is "
                    f"decoded once and augmented as in Sec. 4.2; it applies to the streamed loader"
                )
    elif isinstance(d, FolderData) and d.decode is Decode.gpu and not on_cuda:
        problems.append("data.decode=gpu has no effect on a CPU run: nvJPEG decodes on a CUDA device")
    if isinstance(d, ArchiveData):
        tree = is_image_tree(Path(d.root).expanduser())
        if d.download and tree:
            problems.append(
                "data.download=true has no effect where data.root holds an image tree (train/ and test/): "
                "only the official archive can be fetched"
            )
        for key in ("num_classes", "image_size"):
            fixed, value = getattr(entry, key), getattr(d, key)
            if not tree and fixed is not None and value != fixed:
                problems.append(
                    f"data.{key}={value} has no effect on data={d.name} read from its archive, whose "
                    f"images are {entry.image_size}x{entry.image_size} in {entry.num_classes} classes; it "
                    f"applies to image trees"
                )
    return problems
