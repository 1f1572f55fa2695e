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
