"""What identifies a dataset, so that a run never goes on with other data than it started with.

A `DataIdentity` is a plain dict (it travels in every checkpoint, loadable with `weights_only=True`):

    dataset   the data config's name ("cifar10", "imagefolder", ...)
    classes   the class names, in label order
    images    the image count per split: {"train": ..., "val": ..., "test": ...}
    source    where the images come from: "files" (an ImageFolder tree), "archive" (the official CIFAR
              python batches) or "generator" (data=synthetic)
    digest    SHA-256 of what the source holds: for a tree, its sorted file list (paths relative to data.root)
              with each file's size; for the official archive, the MD5s torchvision checks its batch files
              against; for generated images, their pixels and labels

Computing it reads no image: a tree costs one `stat` per file. Paths are relative, so the same data moved or
copied elsewhere has the same identity; a renamed class, an added, removed or resized file does not.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

DataIdentity = dict  # the plain dict described above


@dataclass(frozen=True)
class Source:
    """Where a dataset's images come from, and the digest of what it holds there."""

    kind: str  # "files", "archive" or "generator"
    digest: str


@dataclass(frozen=True)
class TreeDigests:
    """Two digests of a list of files: `content` (relative paths and sizes: what the data is, kept by a move
    or a copy) and `version` (the modification times too: changed by every rewrite of a file)."""

    content: str
    version: str


def tree_digests(paths: list[str], root: str | Path) -> TreeDigests:
    """Digests of `paths` (image files under `root`), one `stat` per file, in sorted order of their paths
    relative to `root`."""
    root = os.path.join(str(root), "")
    content, version = hashlib.sha256(), hashlib.sha256()
    relative_paths = (
        path[len(root) :] if path.startswith(root) else os.path.relpath(path, root) for path in paths
    )
    for relative, path in sorted(zip(relative_paths, paths)):
        status = os.stat(path)
        entry = f"{relative}\0{status.st_size}\n".encode()
        content.update(entry)
        version.update(entry[:-1] + f"\0{status.st_mtime_ns}\n".encode())
    return TreeDigests(content.hexdigest(), version.hexdigest())


def files_source(paths: list[str], root: str | Path) -> Source:
    """An ImageFolder tree: its image files (every split's, before any hold-out)."""
    return Source("files", tree_digests(paths, root).content)


def archive_source(dataset_class) -> Source:
    """The official CIFAR python batches: torchvision checks each file's MD5 when it reads them, so the
    known MD5s stand for the files' content."""
    files = sorted(dataset_class.train_list + dataset_class.test_list)
    return Source("archive", hashlib.sha256(repr(files).encode()).hexdigest())


def generated_source(*tensors: torch.Tensor) -> Source:
    """Images generated in memory (data=synthetic): the bytes themselves, a few MB."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.contiguous().numpy().tobytes())
    return Source("generator", digest.hexdigest())


def data_identity(dataset: str, classes: list[str], images: dict[str, int], source: Source) -> DataIdentity:
    return {
        "dataset": dataset,
        "classes": list(classes),
        "images": dict(images),
        "source": source.kind,
        "digest": source.digest,
    }


SOURCES = {"files": "an ImageFolder tree", "archive": "the official archive", "generator": "generated images"}


def _names(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def class_differences(stored: list[str], current: list[str]) -> str | None:
    """How two class lists differ (names, count or label order), or None when they are the same."""
    if list(stored) == list(current):
        return None
    only_stored = [name for name in stored if name not in current]
    only_current = [name for name in current if name not in stored]
    if not only_stored and not only_current:
        return f"the same {len(stored)} class names in another label order"
    parts = [f"{len(stored)} -> {len(current)} classes"] if len(stored) != len(current) else []
    if only_stored:
        parts.append(f"only the checkpoint has {_names(only_stored)}")
    if only_current:
        parts.append(f"only the data has {_names(only_current)}")
    return "classes differ (" + "; ".join(parts) + ")"


def identity_differences(stored: DataIdentity, current: DataIdentity) -> list[str]:
    """What differs between two identities, the classes first, as short phrases (empty: the same data)."""
    differences = []
    classes = class_differences(stored.get("classes", []), current["classes"])
    if classes:
        differences.append(classes)
    if stored.get("dataset") != current["dataset"]:
        differences.append(f"dataset {stored.get('dataset')} -> {current['dataset']}")
    old, new = stored.get("images", {}), current["images"]
    counts = [
        f"{split} {old.get(split, 0)} -> {count}"
        for split, count in new.items()
        if old.get(split, 0) != count
    ]
    if counts:
        differences.append("images " + ", ".join(counts))
    if stored.get("source") != current["source"]:
        was, now = (SOURCES.get(kind, kind) for kind in (stored.get("source"), current["source"]))
        differences.append(f"read from {was}, now from {now}")
    elif stored.get("digest") != current["digest"] and not counts and not classes:  # else said already
        differences.append("the same number of images, but other files (renamed, replaced or resized)")
    return differences
