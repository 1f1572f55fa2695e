"""Checkpoints: plain dicts of tensors and Python values, written atomically and verified on load.

Layout in a run's `checkpoints/` folder:
    last.pt, last.pt.sha256     the newest checkpoint and the SHA-256 of its bytes
    prev.pt, prev.pt.sha256     the one before, kept until a newer one is complete on disk

A save writes `last.pt.tmp`, fsyncs it, then renames last -> prev and tmp -> last. A crash or a full disk at
any point leaves at least one complete, verifiable checkpoint. Loading always uses `weights_only=True`, so a
file crafted to run code when unpickled is refused rather than executed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that cannot be used: unreadable, corrupted, unsafe or from another run."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(directory: Path, state: dict) -> Path:
    """Write `state` as directory/last.pt, keeping the previous checkpoint as prev.pt."""
    directory.mkdir(parents=True, exist_ok=True)
    last, tmp = directory / "last.pt", directory / "last.pt.tmp"
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        digest = _sha256(tmp)
        if last.exists():
            os.replace(last, directory / "prev.pt")
            if (directory / "last.pt.sha256").exists():
                os.replace(directory / "last.pt.sha256", directory / "prev.pt.sha256")
        os.replace(tmp, last)
        (directory / "last.pt.sha256.tmp").write_text(digest + "\n")
        os.replace(directory / "last.pt.sha256.tmp", directory / "last.pt.sha256")
        _fsync_dir(directory)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        kept = [p.name for p in (last, directory / "prev.pt") if p.exists()]
        raise CheckpointError(
            f"could not write a checkpoint in {directory}: {error.strerror or error}; "
            f"kept {', '.join(kept) if kept else 'no earlier checkpoint'}"
        ) from None
    return last


def load_checkpoint(path: Path) -> dict:
    """Load one checkpoint file safely; raise CheckpointError naming the file if it cannot be trusted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.exists() and sidecar.read_text().strip() != _sha256(path):
        raise CheckpointError(f"checkpoint {path} is corrupted (its SHA-256 does not match {sidecar.name})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, or a forbidden global in the pickle
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {first_line}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a resnet-train checkpoint (format {FORMAT_VERSION})")
    return state


def latest_checkpoint(directory: Path) -> dict | None:
    """The newest usable checkpoint in `directory` (last.pt, else prev.pt with a warning), or None."""
    candidates = [directory / "last.pt", directory / "prev.pt"]
    errors = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path)
        except CheckpointError as error:
            log.warning("%s", error)
            errors.append(str(error))
            continue
        if errors:
            log.warning(
                "using the previous checkpoint %s (iteration %d)", path, state["trainer"]["iteration"]
            )
        return state
    if errors:
        raise CheckpointError(f"no usable checkpoint in {directory}: {'; '.join(errors)}")
    return None


def check_identity(state: dict, expected: dict, source: str) -> None:
    """Refuse a checkpoint made for another model or dataset than the config asks for."""
    found = state.get("identity", {})
    differs = [key for key in expected if found.get(key) != expected[key]]
    if differs:
        have = ", ".join(f"{k}={found.get(k)}" for k in differs)
        want = ", ".join(f"{k}={expected[k]}" for k in differs)
        raise CheckpointError(f"checkpoint {source} was made for {have}, but the config asks for {want}")


def rng_state() -> dict:
    """Every global random state, as tensors and plain values (loadable with weights_only=True)."""
    version, keys, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["keys"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
