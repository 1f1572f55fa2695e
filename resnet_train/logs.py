"""One log format for every console script: Hydra's logging configs (`configs/hydra/job_logging/`,
`hydra_logging/`) spell `FORMAT` out for `resnet-train`; the argparse tools and the workers spawned by
`trainer.devices=N` call `setup_logging`.
"""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class HeldFileHandler(logging.FileHandler):
    """A run's log file (train.log) that writes nothing until `release_held_logs()`, called once the command
    holds the run directory and its config was accepted (a refused command leaves the file as it was); then
    the records held, in order."""

    def __init__(self, filename: str):
        super().__init__(filename, delay=True)  # delay: no file until the first record
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
    """Log to `stream` (stderr by default) and, if given, to `file` (held until `release_held_logs`). Handlers
    already on the root logger (a caller's, or pytest's capture) are kept: then this changes nothing."""
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if file is not None:
        handlers.append(HeldFileHandler(str(file)))
    logging.basicConfig(level=level, format=FORMAT, datefmt=DATE_FORMAT, handlers=handlers)


def name_job_lines(label: str) -> None:
    """Begin every log line of this process's handlers with `label: ` (jobs side by side interleave lines)."""
    prefixed = FORMAT.replace("%(message)s", label.replace("%", "%%") + ": %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(prefixed, DATE_FORMAT))
