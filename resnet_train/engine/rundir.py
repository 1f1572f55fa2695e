"""The rules of a run directory: one command at a time (an `flock` the kernel drops when its holder dies),
which checkpoint a run resumes from (its own; `trainer.resume=PATH` is only where a run without one starts),
which config changes a resume accepts (none that alter the trajectory), and one dataset per directory (its
identity, data/identity.py, checked; the same data elsewhere resumes).
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


class RunLock:  # holds a run directory for this command; a second command on it is refused
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
            log.warning("cannot lock %s (%s): a second command on this directory would not be refused",
                        self.run_dir, error.strerror or error)  # fmt: skip
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
    """All iterations trained and metrics.json written (a run stopped in between writes it)."""
    return iteration >= max_iters and (Path(run_dir) / "metrics.json").exists()


def lock_holder(run_dir: Path) -> str | None:
    """Who holds `run_dir` ("pid N on HOST"), or None; creates nothing."""
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
    """A checkpoint a run continues from: its own (`own`), or trainer.resume=PATH; `source` names it."""

    def __init__(self, state: dict, source: Path | str, own: bool):
        super().__init__(state)
        self.source, self.own = str(source), own


def find_resume_checkpoint(resume: str, run_dir: Path, config: dict) -> ResumePoint | None:
    """The checkpoint this run continues from (None: a fresh start), checked against `config` (plain)."""
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


def flat(config: dict, prefix: str = "") -> dict:  # {"model.depth": 56, ...}
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(saved: dict, config: dict) -> dict[str, tuple]:
    """key -> (saved, new) for every key that differs but trainer.resume (where a run came from)."""
    old, new = flat(saved), flat(config)
    return {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v and k != "trainer.resume"}


def steers(key: str, settings: dict) -> bool:
    """Whether a key whose role leaves the numbers alone steers this run (`settings`: flat) all the same:
    eval_every where the schedule follows the evaluations, log_every where the net warms up (Sec. 4.2)."""
    if key == "trainer.eval_every":
        return schedule_class(settings["sched._target_"]).uses_evaluations
    if key == "trainer.log_every":
        warmup, family = Warmup(settings["sched.warmup"]), Family(settings["model.family"])
        return uses_warmup(warmup, family, settings["model.depth"])
    return False


def harmless_change(key: str, old, new, config: dict, checkpoint: dict) -> bool:
    """Whether changing `key` on resuming `checkpoint` leaves the trajectory as it was: its schema role
    says so, or a new max_iters for a schedule not spread over it."""
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
    """Refuse to continue a run on other data; a starting checkpoint from other data is only logged."""
    differences = identity_differences(resumed["data_identity"], identity)
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
