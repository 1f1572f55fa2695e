"""One log format for every console script.

`resnet-train` logs through Hydra, whose job and framework logging configs are built here from `FORMAT`
(registered by `register_logging`); the argparse tools (`resnet-info`, `-eval`, `-plot`, `-report`,
`-responses`) and the workers spawned by `trainer.devices=N` call `setup_logging` with the same format.
"""

from __future__ import annotations

import logging
from pathlib import Path

FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def setup_logging(level: int = logging.INFO, file: Path | None = None, stream=None) -> None:
    """Log to `stream` (stderr by default) and, if given, to `file`, in the project's format. Handlers already
    on the root logger (a caller's, or pytest's capture) are kept: then this changes nothing."""
    handlers: list[logging.Handler] = [logging.StreamHandler(stream)]
    if file is not None:
        handlers.append(logging.FileHandler(file))
    logging.basicConfig(level=level, format=FORMAT, datefmt=DATE_FORMAT, handlers=handlers)


def hydra_logging_config(file: str | None) -> dict:
    """A `logging.config.dictConfig` in the project's format, as Hydra's `hydra/job_logging` and
    `hydra/hydra_logging` groups take it; `file` adds a log file (the run's train.log)."""
    handlers = {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"}
    }
    if file is not None:
        handlers["file"] = {"class": "logging.FileHandler", "formatter": "plain", "filename": file}
    return {
        "version": 1,
        "formatters": {"plain": {"format": FORMAT, "datefmt": DATE_FORMAT}},
        "handlers": handlers,
        "root": {"level": "INFO", "handlers": list(handlers)},
        "disable_existing_loggers": False,
    }


def register_logging() -> None:
    """Store the configs that `configs/config.yaml` selects as `hydra/job_logging: resnet_train` (the run's
    log, written to `<run>/<job name>.log`) and `hydra/hydra_logging: resnet_train` (Hydra's own lines)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    job_log = "${hydra.runtime.output_dir}/${hydra.job.name}.log"
    store.store(group="hydra/job_logging", name="resnet_train", node=hydra_logging_config(job_log))
    store.store(group="hydra/hydra_logging", name="resnet_train", node=hydra_logging_config(None))
