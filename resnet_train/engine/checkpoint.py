"""Checkpoints: plain dicts of tensors and Python values, written atomically and verified on load.

A run's `checkpoints/` holds last.pt (the newest), prev.pt (the one before, kept until a newer one is on
disk) and, with a validation split, best.pt, each with a `.sha256` of its bytes. A save writes and fsyncs
`NAME.pt.tmp`, then records its digest in `NAME.pt.tmp.sha256` (the commit), then renames one file at a time.
A file is trusted when its SHA-256 is recorded in any `.sha256` of its folder, so a crash between renames
leaves every committed file verifiable, and the next save finishes the renames. A file with no digest (copied
by hand) must pass its zip records' CRCs. Loading uses `weights_only=True`: no pickled code ever runs.
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
    """A committed save's renames (tmp -> NAME, NAME -> PREVIOUS, and digests), in an order a crash can cut
    anywhere: run again, it finishes what is left."""
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
    """Write `state` as directory/NAME.pt, keeping the one it replaces as PREVIOUS.pt (None: not kept). A
    failed write (a full disk) leaves the earlier files and no temporary one, and says what was kept."""
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
    """What is wrong with `path` as a zip archive (torch.save's format), every record's CRC checked."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # BadZipFile, or a struct/zlib error from a damaged header
        return f"it is not a readable zip archive ({error})"
    return f"the CRC of its record {bad} does not match" if bad else None


def verify_checkpoint(path: Path) -> None:
    """Refuse a file whose bytes are not the ones its writer recorded (see the module's rules)."""
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
    """Refuse, in one line, a checkpoint that lacks a part `needs` names (rather than a later KeyError)."""
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
    """Load one checkpoint file safely, holding the parts `needs` names; else CheckpointError naming it."""
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
    """The newest usable checkpoint in `directory` (None: none): a committed last.pt.tmp whose renames a
    crash cut short, last.pt, then prev.pt (with a warning). An uncommitted last.pt.tmp is ignored."""
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
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
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
