"""One log format for every console script.

`resnet-train` logs through Hydra, whose logging configs (`configs/hydra/job_logging/resnet_train.yaml` and
`hydra_logging/`) spell `FORMAT` out; the argparse tools (`resnet-info`, `-eval`, `-plot`, `-report`,
`-responses`) and the workers spawned by `trainer.devices=N` call `setup_logging` with the same format.
"""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class HeldFileHandler(logging.FileHandler):
    """A run's log file (train.log) that receives nothing until `release_held_logs()`, called once the command
    holds the run directory and its config was accepted: a refused command (another one running there, a
    config that would change the run) leaves the file as it was, and says why on the console. The records
    logged before the release are then written, in order."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None):
        super().__init__(filename, mode, encoding, delay=True)  # delay: no file until the first record
        self.held: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is None:
            super().emit(record)
        else:
            self.held.append(record)

    def write_held(self) -> None:  # not `release`: logging.Handler's lock uses that name
        held, self.held = self.held or [], None
        for record in held:
            super().emit(record)


def release_held_logs() -> None:
    """Let the root logger's `HeldFileHandler`s write, from the records they held on."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, HeldFileHandler):
            handler.write_held()


def setup_logging(level: int = logging.INFO, file: Path | None = None, stream=None) -> None:
    """Log to `stream` (stderr by default) and, if given, to `file` (held until `release_held_logs`), in the
    project's format. Handlers already on the root logger (a caller's, or pytest's capture) are kept: then
    this changes nothing."""
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if file is not None:
        handlers.append(HeldFileHandler(str(file)))
    logging.basicConfig(level=level, format=FORMAT, datefmt=DATE_FORMAT, handlers=handlers)


def name_job_lines(label: str) -> None:
    """Begin every log line of this process's handlers with `label: `: the jobs of a sweep side by side
    interleave their lines, and each must say whose it is."""
    prefixed = FORMAT.replace("%(message)s", label.replace("%", "%%") + ": %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(prefixed, DATE_FORMAT))
