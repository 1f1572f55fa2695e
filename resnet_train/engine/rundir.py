"""The rules of a run directory: one command at a time, which checkpoint a run resumes from, and which config
changes a resume accepts.

- A lock (`flock` on `<run>/.lock`) refuses a second command on a directory that one is running in. The
  kernel drops it when its holder exits or is killed, so a SIGKILL never leaves a stale lock.
- Once the run directory holds a checkpoint, resuming takes it; `trainer.resume=PATH` is only where a run
  without one starts.
- A resume compares the config stored in the checkpoint with the new one: a change that alters the run's
  trajectory is refused, one that only changes how the run is watched, saved or executed is logged.
- A run directory belongs to one dataset: once the data is built, its identity (data/identity.py: class
  names, image counts, a digest of the files) is compared with the one stored in the checkpoint, and other
  data is refused. The same data in another place (data.root) resumes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

from ..config import Family, Role, Warmup, override_text, role_of
from ..data.identity import identity_differences
from ..errors import UserError
from .checkpoint import TRAINING_KEYS, CheckpointError, latest_checkpoint, load_checkpoint
from .schedules import schedule_class, uses_warmup

log = logging.getLogger("resnet_train")

LOCK_NAME = ".lock"

# What a checkpoint given as trainer.resume=PATH must match to be loaded at all: the net's structure, the
# classes its last layer predicts and the optimizer whose state it carries. Other changes are the point of
# starting a new run from it, and are logged.
LOADABLE = (
    "model.family", "model.depth", "model.residual", "model.shortcut", "model.bottleneck_stride",
    "model.stem", "data.name", "data.image_size", "data.num_classes", "optim._target_",
)  # fmt: skip


class RunLock:
    """Holds a run directory for this command; a second command on it is refused in one line."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.file = Path(run_dir), None

    def __enter__(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        file = open(self.run_dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not said its id yet"
            file.close()
            raise UserError(
                f"{self.run_dir} is in use by another resnet-train ({holder}); wait for it to end, or choose "
                f"another directory (hydra.run.dir=...)"
            ) from None
        except OSError as error:  # a file system without flock (some network file systems)
            file.close()
            log.warning(
                "cannot lock %s (%s): a second command on this directory would not be refused",
                self.run_dir, error.strerror or error,
            )  # fmt: skip
            return self
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        self.file = file
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing the last descriptor drops the lock
            self.file = None


def run_complete(run_dir: Path, iteration: int, max_iters: int) -> bool:
    """A run resumed at `iteration` has nothing left to do: all its iterations trained and its metrics.json
    written (a run stopped between its last checkpoint and metrics.json finishes that)."""
    return iteration >= max_iters and (Path(run_dir) / "metrics.json").exists()


def lock_holder(run_dir: Path) -> str | None:
    """Who holds `run_dir` (RunLock's "pid N on HOST"), or None where no command does; creates nothing."""
    try:
        file = open(Path(run_dir) / LOCK_NAME)
    except OSError:  # no lock file: never run, or run before there was one
        return None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return file.read().strip() or "a process that has not said its id yet"
        except OSError:  # a file system without flock: nothing to tell
            return None
        return None  # closing the file drops the shared lock just taken


class ResumePoint(dict):
    """A checkpoint a run continues from: the run's own (`own`), or the starting checkpoint given as
    trainer.resume=PATH; `source` names it in messages."""

    def __init__(self, state: dict, source: Path | str, own: bool):
        super().__init__(state)
        self.source, self.own = str(source), own


def find_resume_checkpoint(resume: str, run_dir: Path, config: dict) -> ResumePoint | None:
    """The checkpoint this run continues from (None: a fresh start), checked against `config`, the run's
    resolved config as plain values."""
    checkpoint_dir = run_dir / "checkpoints"
    if resume == "never":
        leftovers = [name for name in ("checkpoints", "metrics.json") if (run_dir / name).exists()]
        if any(run_dir.glob("events.out.tfevents.*")):
            leftovers.append("TensorBoard events")
        if leftovers:
            raise UserError(
                f"trainer.resume=never, but {run_dir} already holds {', '.join(leftovers)}; "
                f"choose another directory (hydra.run.dir=...) or resume (trainer.resume=auto)"
            )
        return None
    own = latest_checkpoint(checkpoint_dir, TRAINING_KEYS)
    if own is not None:
        if resume != "auto":
            log.info(
                "%s holds this run's own checkpoint (iteration %d): resuming from it; trainer.resume=%s "
                "was only where the run started", checkpoint_dir, own["trainer"]["iteration"], resume,
            )  # fmt: skip
        check_own_config(own, config, run_dir)
        return ResumePoint(own, checkpoint_dir, own=True)
    if resume == "auto":
        return None
    start = load_checkpoint(Path(resume).expanduser(), TRAINING_KEYS)
    check_start_config(start, config, resume)
    return ResumePoint(start, resume, own=False)


def flat(config: dict, prefix: str = "") -> dict:
    """A nested config as {"model.depth": 56, ...}."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved: dict, config: dict) -> dict[str, tuple]:
    """key -> (saved value, new value) for every key whose value differs, except trainer.resume (where a run
    came from, not what it does)."""
    old, new = flat(saved), flat(config)
    return {
        key: (old.get(key), value)
        for key, value in new.items()
        if old.get(key) != value and key != "trainer.resume"
    }


def steers(key: str, settings: dict) -> bool:
    """Whether a key whose role leaves the numbers alone steers this run all the same (`settings`: a flat
    config, as `flat` gives): trainer.eval_every where the schedule follows the evaluations, and
    trainer.log_every where the net warms up (the warm-up ends at the first logging point below its train
    error)."""
    if key == "trainer.eval_every":
        return schedule_class(settings["sched._target_"]).uses_evaluations
    if key == "trainer.log_every":
        warmup, family = Warmup(settings["sched.warmup"]), Family(settings["model.family"])
        return uses_warmup(warmup, family, settings["model.depth"])
    return False


def harmless_change(key: str, old, new, config: dict, checkpoint: dict) -> bool:
    """Whether changing `key` from `old` to `new` on resuming `checkpoint` leaves the trajectory as it was:
    a key that changes only the cost, how the run is watched or where files are (its schema role), or a
    longer or shorter run of a schedule that does not spread over trainer.max_iters."""
    if key == "trainer.max_iters":
        schedule = schedule_class(config["sched"]["_target_"])
        return new >= checkpoint["trainer"]["iteration"] and not schedule.uses_max_iters
    if key == "trainer.log_every":  # steers only while the warm-up lasts
        return not checkpoint["schedule"]["warming_up"]
    return role_of(key) in (Role.cost, Role.watch, Role.files) and not steers(key, flat(config))


def _describe(changes: dict[str, tuple]) -> str:
    lines = [f"  {key}: {override_text(old)} -> {override_text(new)}" for key, (old, new) in changes.items()]
    return "\n".join(lines)


def check_own_config(checkpoint: dict, config: dict, run_dir: Path) -> None:
    """Refuse to continue a run with a config that alters its trajectory; log the changes that do not."""
    changes = config_changes(checkpoint["config"], config)
    refused = {k: v for k, v in changes.items() if not harmless_change(k, *v, config, checkpoint)}
    allowed = {k: v for k, v in changes.items() if k not in refused}
    if refused:
        revert = " ".join(f"{key}={override_text(old)}" for key, (old, _) in refused.items())
        raise UserError(
            f"the run in {run_dir} was made with another config; resuming it with these changes would mix "
            f"two trajectories in one run:\n{_describe(refused)}\n"
            f"Either revert them ({revert}), or run the new config in another directory: "
            f"hydra.run.dir=NEW_DIR to start from scratch, or hydra.run.dir=NEW_DIR "
            f"trainer.resume={run_dir / 'checkpoints' / 'last.pt'} to start from this run's checkpoint"
        )
    if allowed:
        log.info("resuming with changed settings that leave the trajectory alone:\n%s", _describe(allowed))


def check_start_config(checkpoint: dict, config: dict, source: str) -> None:
    """Refuse a starting checkpoint whose net, classes or optimizer differ from the config; log the rest."""
    changes = config_changes(checkpoint["config"], config)
    refused = {k: v for k, v in changes.items() if k in LOADABLE}
    if refused:
        raise CheckpointError(
            f"checkpoint {source} was made for another net, dataset or optimizer than the config asks for:\n"
            f"{_describe(refused)}"
        )
    if changes:
        log.info("starting from %s with other settings than its own:\n%s", source, _describe(changes))


def check_data_identity(resumed: ResumePoint, identity: dict, data_root: str, run_dir: Path) -> None:
    """Refuse to continue a run on other data than it was trained on (other class names, image counts or
    files); a starting checkpoint from other data is the point of fine-tuning, and only logged."""
    stored = resumed["data_identity"]
    differences = identity_differences(stored, identity)
    if not differences:
        return
    if not resumed.own:
        log.warning("starting from %s, trained on other data: %s", resumed.source, "; ".join(differences))
        return
    raise UserError(
        f"data.root={data_root} does not hold the data the run in {run_dir} was trained on: "
        f"{'; '.join(differences)}. Either point data.root back at that data, or train on this data in "
        f"another directory: hydra.run.dir=NEW_DIR to start from scratch, or hydra.run.dir=NEW_DIR "
        f"trainer.resume={run_dir / 'checkpoints' / 'last.pt'} to fine-tune from this run's weights"
    )
