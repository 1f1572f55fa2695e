"""What identifies a dataset, so that a run never goes on with other data than it started with.

A `DataIdentity` is a plain dict (it travels in every checkpoint, loadable with `weights_only=True`):

    dataset   the data config's name ("cifar10", "imagefolder", ...)
    classes   the class names, in label order
    images    the image count per split: {"train": ..., "val": ..., "test": ...}
    source    where the images come from: "files" (an ImageFolder tree), "archive" (the official CIFAR
              python batches) or "generator" (data=synthetic)
    digest    SHA-256 of what the source holds: for a tree, its sorted file list (paths relative to data.root)
              with each file's size and the digest of its bytes; for the official archive, the MD5s
              torchvision checks its batch files against; for generated images, their pixels and labels

A tree's files are read once: their digests are cached beside the data by (relative path, size, modification
time), so a later run costs one `stat` per file and reads only new or rewritten files. Paths are relative, so
the same data moved or copied elsewhere has the same identity; a renamed class, an added, removed, resized or
replaced file does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..outputs import atomic_output

log = logging.getLogger("resnet_train")

DataIdentity = dict  # the plain dict described above


@dataclass(frozen=True)
class Source:
    """Where a dataset's images come from, and the digest of what it holds there."""

    kind: str  # "files", "archive" or "generator"
    digest: str


DIGEST_CACHE = ".resnet-train-digests.json"  # hidden: never read as a class or an image
DIGEST_CACHE_FORMAT = 1


def _cache_path(root: Path) -> Path:
    """The digest cache beside the data, or, for a data folder one cannot write, in the user's cache folder
    under a name of the folder's absolute path."""
    if os.access(root, os.W_OK):
        return root / DIGEST_CACHE
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnet-train"
    return base / f"digests-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def _read_cache(path: Path) -> dict:
    try:
        cached = json.loads(path.read_text())
        return cached["files"] if cached.get("format") == DIGEST_CACHE_FORMAT else {}
    except (OSError, ValueError, KeyError, AttributeError):  # none yet, or damaged: the files are read
        return {}


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]


def tree_digest(paths: list[str], root: str | Path) -> str:
    """SHA-256 over `paths` (image files under `root`) in sorted order of their paths relative to `root`:
    each one's relative path, size and the digest of its bytes. A file's digest is read from the cache
    beside the data (keyed by relative path, size and modification time) where it is there, so only new or
    rewritten files are read; a moved or copied tree is the same data."""
    root = Path(root)
    prefix = os.path.join(str(root), "")
    cache = _cache_path(root)
    known, files = _read_cache(cache), {}
    for path in paths:
        relative = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, root)
        status = os.stat(path)
        stamp = [status.st_size, status.st_mtime_ns]
        cached = known.get(relative)
        files[relative] = [*stamp, cached[2] if cached and cached[:2] == stamp else _file_digest(path)]
    if files != known:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(cache) as partial:
                partial.write_text(json.dumps({"format": DIGEST_CACHE_FORMAT, "files": files}))
        except (OSError, UserError) as error:  # the next run reads the files again
            log.warning("could not cache the image digests in %s: %s", cache, error)
    total = hashlib.sha256()
    for relative in sorted(files):
        size, _, digest = files[relative]
        total.update(f"{relative}\0{size}\0{digest}\n".encode())
    return total.hexdigest()


def files_source(paths: list[str], root: str | Path) -> Source:
    """An ImageFolder tree: its image files (every split's, before any hold-out)."""
    return Source("files", tree_digest(paths, root))


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
