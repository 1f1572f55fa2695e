"""The one rule for the files the tools write (`--out`, `--json`, `--csv`, `eval.out`): a tool never destroys
a run or its own input. Never written over, not even with `--force`: the command's input, any file of a run's
`checkpoints/` or `.hydra/`, and a run's metrics.json, train.log, .lock and TensorBoard events. Any other
existing file only with `--force`. Every file is written under a temporary name, flushed and renamed
(`atomic_output`, which a run's own files use too), so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UserError

# What a run directory holds besides its checkpoints/ folder (engine/rundir.py, engine/logger.py).
RUN_FILES = frozenset({"metrics.json", "train.log", ".lock"})
RUN_FOLDERS = frozenset({"checkpoints", ".hydra"})
EVENTS_PREFIX = "events.out.tfevents."


def _is_run_file(path: Path) -> bool:
    if path.parent.name in RUN_FOLDERS:
        return True
    is_run = any((path.parent / folder).is_dir() for folder in RUN_FOLDERS)
    return is_run and (path.name in RUN_FILES or path.name.startswith(EVENTS_PREFIX))


def check_output(
    out: Path, *, inputs: Iterable[Path] = (), force: bool = False, option: str = "--out"
) -> Path:
    """`out` as it may be written, or a UserError saying why not; `inputs`: the files the command reads."""
    out = Path(out).expanduser()
    target = out.resolve()
    for source in inputs:
        source = Path(source).expanduser()
        if source.exists() and target.exists() and target.samefile(source) or target == source.resolve():
            raise UserError(f"{option} {out} is the input {source}; write the output to another file")
    if _is_run_file(target):
        raise UserError(
            f"{option} {out} is a file of a run ({target.parent}); it is never overwritten, write the output "
            f"elsewhere"
        )
    if target.is_dir():
        raise UserError(f"{option} {out} is a directory; give a file name")
    if target.exists() and not force:
        raise UserError(f"{option} {out} already exists; add --force to replace it")
    parent = target.parent
    existing = next(folder for folder in (parent, *parent.parents) if folder.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {out}: {existing} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        why = error.strerror or error
        raise UserError(f"{option} {out}: cannot create its folder {parent} ({why})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {out}: its folder {parent} is not writable")
    return out


def figure_path(out: Path) -> Path:
    """A figure's file name as `savefig` writes it (`.png` added without an extension), to check and log."""
    out = Path(out)
    return out.with_name(out.name + ".png") if not out.suffix and not out.is_dir() else out


@contextlib.contextmanager
def atomic_output(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` with its extension (for `savefig`), renamed to `out` when the block ends
    without an error, removed otherwise; a failed write becomes a UserError naming `out`."""
    out = Path(out).expanduser()
    # Named by the process (one write at a time), created by the writer itself with the usual permissions.
    partial = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        yield partial
        with open(partial, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(partial, out)
    except (OSError, RuntimeError) as error:  # torch.save turns a failed write into a RuntimeError
        raise UserError(f"could not write {out}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        partial.unlink(missing_ok=True)


def write_text(out: Path, text: str) -> None:
    with atomic_output(out) as partial:
        partial.write_text(text)
