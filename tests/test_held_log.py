"""The run's log file holds its lines back until the command owns the run (logs.HeldFileHandler): a refused
command leaves train.log as it was."""

from __future__ import annotations

import logging

from resnet_train.logs import HeldFileHandler, release_held_logs


def test_the_log_file_is_untouched_until_released_then_gets_every_line_in_order(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("the run's earlier lines\n")
    handler = HeldFileHandler(str(path))
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("held-log-test")
    logger.propagate, logger.level = False, logging.INFO
    root = logging.getLogger()
    logger.addHandler(handler)
    root.addHandler(handler)  # release_held_logs looks at the root logger's handlers
    try:
        logger.info("loading")
        logger.error("refused")
        assert path.read_text() == "the run's earlier lines\n"
        release_held_logs()
        logger.info("training")
        handler.flush()
        assert path.read_text() == "the run's earlier lines\nloading\nrefused\ntraining\n"
    finally:
        root.removeHandler(handler)
        logger.removeHandler(handler)
        handler.close()


def test_a_held_log_that_is_never_released_creates_no_file(tmp_path):
    handler = HeldFileHandler(str(tmp_path / "train.log"))
    handler.handle(logging.makeLogRecord({"msg": "in use by another command"}))
    handler.close()
    assert not (tmp_path / "train.log").exists()


def test_hydras_logging_configs_write_every_tools_format_and_hold_the_run_log():
    from omegaconf import OmegaConf

    from resnet_train.config import config_dir
    from resnet_train.logs import DATE_FORMAT, FORMAT

    for group in ("job_logging", "hydra_logging"):
        config = OmegaConf.load(f"{config_dir()}/hydra/{group}/resnet_train.yaml")
        assert (config.formatters.plain.format, config.formatters.plain.datefmt) == (FORMAT, DATE_FORMAT)
    job = OmegaConf.load(f"{config_dir()}/hydra/job_logging/resnet_train.yaml")
    assert job.handlers.file["class"] == f"{HeldFileHandler.__module__}.HeldFileHandler"
