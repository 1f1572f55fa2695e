"""Checkpoints: plain dicts of tensors and Python values, written atomically and verified on load.

Layout in a run's `checkpoints/` folder:
    last.pt, last.pt.sha256     the newest checkpoint and the SHA-256 of its bytes
    prev.pt, prev.pt.sha256     the one before, kept until a newer one is complete on disk
    best.pt, best.pt.sha256     with a validation split: the one with the lowest val error so far

A save writes `NAME.pt.tmp` and fsyncs it, then records its digest in `NAME.pt.tmp.sha256`: that is the
moment the save is committed. Then renames move last -> prev and the new file into place, one file at a
time. A file is trusted when its SHA-256 equals a digest recorded in any `.sha256` file of its folder, so a
crash between two renames, which may leave a digest under its old or its new name, still leaves every
committed file verifiable; `latest_checkpoint` also finds a committed `last.pt.tmp` whose renames were cut
short, and the next save finishes them. A file with no digest anywhere (one copied by hand) is checked
against the CRCs of its zip records (torch.save writes a zip) before it is trusted. Loading always uses
`weights_only=True`, so a file crafted to run code when unpickled is refused rather than executed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

log = logging.getLogger(__name__)

# 2: each option's own settings (optim, sched and data schemas, no `name` keys), the data identity's digest of
# the files' bytes. A file of another format is refused in one line.
FORMAT_VERSION = 2

# What a checkpoint must hold to continue training from it, and to use its weights (every value a dict).
WEIGHTS_KEYS = ("model", "config", "input")
TRAINING_KEYS = (*WEIGHTS_KEYS, "optimizer", "schedule", "scaler", "trainer", "rng", "data_identity")


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


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_digests(directory: Path) -> set[str]:
    """Every SHA-256 recorded in a `.sha256` file of `directory`."""
    digests = set()
    for sidecar in directory.glob("*.sha256"):
        try:
            digests.add(sidecar.read_text().strip())
        except (OSError, UnicodeDecodeError):  # a digest file torn by a crash records nothing
            continue
    return digests


def _committed(tmp: Path) -> bool:
    """A save's temporary file whose digest was recorded: complete, only its renames were cut short."""
    sidecar = _digest_path(tmp)
    return tmp.is_file() and sidecar.is_file() and sidecar.read_text().strip() == _sha256(tmp)


def _move_into_place(directory: Path, name: str, previous: str | None) -> None:
    """The renames of a committed save (NAME.pt.tmp -> NAME.pt, NAME.pt -> PREVIOUS.pt, and their digests),
    in an order that a crash can cut anywhere: run again, it finishes what is left."""
    path, tmp = directory / f"{name}.pt", directory / f"{name}.pt.tmp"
    if tmp.exists():
        if previous is not None:
            if path.exists():
                os.replace(path, directory / f"{previous}.pt")
            if _digest_path(path).exists():  # the digest of what is now PREVIOUS.pt
                os.replace(_digest_path(path), _digest_path(directory / f"{previous}.pt"))
        os.replace(tmp, path)
    if _digest_path(tmp).exists():
        os.replace(_digest_path(tmp), _digest_path(path))
    _fsync_dir(directory)


def _finish_interrupted_save(directory: Path, name: str, previous: str | None) -> None:
    """Complete the renames of a save that was committed before a crash; drop a write that was not."""
    tmp = directory / f"{name}.pt.tmp"
    if tmp.exists() and not _committed(tmp):
        _digest_path(tmp).unlink(missing_ok=True)
        tmp.unlink()
    if tmp.exists() or _digest_path(tmp).exists():
        _move_into_place(directory, name, previous)


def _io_reason(error: BaseException | None) -> str | None:
    """The system's words for a failed write; torch.save wraps the OSError of its file in a RuntimeError."""
    while error is not None:
        if isinstance(error, OSError):
            return error.strerror or str(error)
        error = error.__cause__ or error.__context__
    return None


def save_checkpoint(directory: Path, state: dict, name: str = "last", previous: str | None = "prev") -> Path:
    """Write `state` as directory/NAME.pt, keeping the one it replaces as PREVIOUS.pt (None: not kept).

    A failed write (a full disk) leaves the earlier files as they were and no temporary file, and raises
    CheckpointError naming what was kept.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{name}.pt.tmp"
    try:
        _finish_interrupted_save(directory, name, previous)
        try:
            with open(tmp, "wb") as file:
                torch.save(state, file)
                file.flush()
                os.fsync(file.fileno())
            with open(_digest_path(tmp), "w") as file:  # the commit point: the file is complete
                file.write(_sha256(tmp) + "\n")
                file.flush()
                os.fsync(file.fileno())
        except Exception:
            _digest_path(tmp).unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
            raise
        _move_into_place(directory, name, previous)
    except (OSError, RuntimeError) as error:
        reason = _io_reason(error)
        if reason is None:
            raise
        kept = [f"{n}.pt" for n in (name, previous) if n is not None and (directory / f"{n}.pt").exists()]
        raise CheckpointError(
            f"could not write a checkpoint in {directory}: {reason}; "
            f"kept {', '.join(kept) if kept else 'no earlier checkpoint'}"
        ) from None
    return directory / f"{name}.pt"


def _zip_problem(path: Path) -> str | None:
    """What is wrong with `path` as a zip archive (torch.save's format), checking every record's CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # BadZipFile, or a struct/zlib error from a damaged header
        return f"it is not a readable zip archive ({error})"
    return f"the CRC of its record {bad} does not match" if bad else None


def verify_checkpoint(path: Path) -> None:
    """Refuse a file whose bytes are not the ones its writer recorded.

    Trusted: a SHA-256 recorded in any `.sha256` file beside it (mid-rotation a digest may sit under the
    file's old or new name). A file with its own `.sha256` that does not match is corrupted. A file without
    any recorded digest (copied by hand) must pass the CRC check of its zip records.
    """
    digest = _sha256(path)
    if digest in _recorded_digests(path.parent):
        return
    sidecar = _digest_path(path)
    if sidecar.exists():
        raise CheckpointError(f"checkpoint {path} is corrupted (its SHA-256 does not match {sidecar.name})")
    problem = _zip_problem(path)
    if problem:
        raise CheckpointError(f"checkpoint {path} is corrupted (it has no {sidecar.name}, and {problem})")
    log.info("checkpoint %s has no %s; the CRCs of its zip records check out", path, sidecar.name)


def check_structure(state: dict, source, needs: tuple[str, ...]) -> None:
    """Refuse a checkpoint that lacks one of the parts `needs` names (or holds one that is not a dict), in
    one line naming them, rather than failing later with a KeyError."""
    missing = [key for key in needs if not isinstance(state.get(key), dict)]
    trainer = state.get("trainer")
    if "trainer" in needs and isinstance(trainer, dict) and not isinstance(trainer.get("iteration"), int):
        missing.append("trainer.iteration")
    if missing:
        raise CheckpointError(
            f"checkpoint {source} is incomplete: it lacks {', '.join(missing)} (a resnet-train checkpoint "
            f"holds {', '.join(needs)})"
        )


def load_checkpoint(path: Path, needs: tuple[str, ...] = ()) -> dict:
    """Load one checkpoint file safely and check that it holds the parts `needs` names (TRAINING_KEYS,
    WEIGHTS_KEYS); raise CheckpointError naming the file if it cannot be trusted or used."""
    path = Path(path)
    if path.is_dir():
        inside = next((p for p in (path / "checkpoints" / "last.pt", path / "last.pt") if p.is_file()), None)
        raise CheckpointError(
            f"{path} is a directory; give a checkpoint file"
            + (f", e.g. {inside}" if inside else " (a run's checkpoints/last.pt)")
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    verify_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message would suggest weights_only=False: never for this file
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded safely: it holds objects other than tensors and plain "
            f"values, so resnet-train did not write it as it is; it is not loaded"
        ) from None
    except Exception as error:  # a truncated zip or a damaged record
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely: {first_line}") from None
    if not isinstance(state, dict) or not isinstance(state.get("format"), int):
        raise CheckpointError(f"{path} is not a resnet-train checkpoint")
    if state["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a checkpoint of format {state['format']}, from another version of resnet-train; this "
            f"one reads format {FORMAT_VERSION}: use the version that wrote it, or train anew"
        )
    check_structure(state, path, needs)
    return state


def latest_checkpoint(directory: Path, needs: tuple[str, ...] = ("trainer",)) -> dict | None:
    """The newest usable checkpoint in `directory` (holding what `needs` names), or None if it holds none.

    Newest first: a committed last.pt.tmp whose renames a crash cut short, last.pt, then prev.pt (with a
    warning when a newer one was unusable). An uncommitted last.pt.tmp is an unfinished write: ignored.
    """
    tmp = directory / "last.pt.tmp"
    candidates = ([tmp] if _committed(tmp) else []) + [directory / "last.pt", directory / "prev.pt"]
    errors = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = load_checkpoint(path, needs)
        except CheckpointError as error:
            log.warning("%s", error)
            errors.append(str(error))
            continue
        iteration = state["trainer"]["iteration"]
        if path == tmp:
            log.warning("using %s (iteration %d): complete; a crash cut its renames short", tmp, iteration)
        elif errors or path.name == "prev.pt":
            log.warning("using the previous checkpoint %s (iteration %d)", path, iteration)
        return state
    if errors:
        raise CheckpointError(f"no usable checkpoint in {directory}: {'; '.join(errors)}")
    return None


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
