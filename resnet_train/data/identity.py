"""What identifies a dataset, so that a run never goes on with other data than it started with.

The identity is a plain dict (it travels in every checkpoint, loadable with `weights_only=True`): `dataset`
(data.name), `classes` (in label order), `images` (count per split), `source` ("files", "archive" or
"generator") and `digest`, a SHA-256 of what the source holds: a tree's sorted relative paths with each file's
size and bytes' digest; the MD5s torchvision checks the official archive against; generated pixels and labels.
A tree's file digests are cached by (relative path, size, mtime), so a later run reads only new or rewritten
files; a moved or copied tree keeps its identity, a renamed class or an added, removed or changed file does
not.
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
    """The digest of the image files `paths` under `root` (see above), reusing the cached file digests."""
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


def archive_source(dataset_class) -> Source:
    """The official CIFAR python batches: torchvision checks each file's MD5 when it reads them, so the
    known MD5s stand for the files' content."""
    files = sorted(dataset_class.train_list + dataset_class.test_list)
    return Source("archive", hashlib.sha256(repr(files).encode()).hexdigest())


def generated_source(*tensors: torch.Tensor) -> Source:
    """Images generated in memory (data=synthetic): the bytes themselves, a few MB."""
    digest = hashlib.sha256(b"".join(tensor.contiguous().numpy().tobytes() for tensor in tensors))
    return Source("generator", digest.hexdigest())


def data_identity(dataset: str, classes: list[str], images: dict[str, int], source: Source) -> dict:
    return {"dataset": dataset, "classes": list(classes), "images": dict(images), "source": source.kind,
            "digest": source.digest}  # fmt: skip


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


def identity_differences(stored: dict, current: dict) -> list[str]:
    """What differs between two identities, the classes first, as short phrases (empty: the same data)."""
    differences = []
    classes = class_differences(stored.get("classes", []), current["classes"])
    if classes:
        differences.append(classes)
    if stored.get("dataset") != current["dataset"]:
        differences.append(f"dataset {stored.get('dataset')} -> {current['dataset']}")
    old, new = stored.get("images", {}), current["images"]
    counts = [f"{split} {old.get(split, 0)} -> {n}" for split, n in new.items() if old.get(split, 0) != n]
    if counts:
        differences.append("images " + ", ".join(counts))
    if stored.get("source") != current["source"]:
        was, now = (SOURCES.get(kind, kind) for kind in (stored.get("source"), current["source"]))
        differences.append(f"read from {was}, now from {now}")
    elif stored.get("digest") != current["digest"] and not counts and not classes:  # else said already
        differences.append("the same number of images, but other files (renamed, replaced or resized)")
    return differences
