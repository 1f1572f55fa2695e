"""A pre-emption signal outside the loop stops the run at once, wherever Python happens to be: also inside a
log handler that swallows the exceptions it raises (tqdm's logging redirect, on while a run trains)."""

from __future__ import annotations

import logging
import signal

import pytest
from tqdm.contrib.logging import logging_redirect_tqdm

from resnet_train.engine.signals import Preempted, SignalFlag, StopOutsideLoop


class SignalWhileFormatting(logging.Formatter):
    """Delivers SIGTERM to this process in the middle of a handler's emit()."""

    def format(self, record: logging.LogRecord) -> str:
        signal.raise_signal(signal.SIGTERM)
        return super().format(record)


def test_a_signal_during_a_log_line_under_tqdms_redirect_stops_the_run():
    logger = logging.getLogger("signal-during-log-test")
    handler = logging.StreamHandler()
    handler.setFormatter(SignalWhileFormatting())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with StopOutsideLoop(), logging_redirect_tqdm(loggers=[logger]):
            with pytest.raises(Preempted) as stopped:
                logger.warning("loading the data ...")
        assert stopped.value.signum == signal.SIGTERM and stopped.value.iteration is None
    finally:
        logger.removeHandler(handler)


def test_the_loops_flag_says_a_signal_once_when_the_loop_asks_not_in_its_handler(caplog):
    # A handler that logs may interrupt a log line being written to train.log, whose file then refuses the
    # reentrant write with a traceback.
    with caplog.at_level(logging.WARNING, logger="resnet_train"), SignalFlag() as flag:
        signal.raise_signal(signal.SIGTERM)
        assert flag.signum == signal.SIGTERM and not caplog.records
        assert flag.received() == signal.SIGTERM and flag.received() == signal.SIGTERM
    said = [record.getMessage() for record in caplog.records]
    assert said == ["received SIGTERM: finishing this step and writing a checkpoint"]


def test_a_second_signal_changes_nothing_the_first_started_inside_or_after_the_loop():
    # A sweep side by side passes a signal on to its jobs, which may have had it from the process group.
    with pytest.raises(Preempted) as stopped:
        with StopOutsideLoop():
            try:
                signal.raise_signal(signal.SIGTERM)
            finally:
                signal.raise_signal(signal.SIGTERM)  # while the first one's Preempted unwinds: nothing
    assert stopped.value.signum == signal.SIGTERM and stopped.value.iteration is None
    with pytest.raises(Preempted, match="at iteration 3"):
        with StopOutsideLoop():
            with SignalFlag() as flag:
                signal.raise_signal(signal.SIGINT)
                assert flag.received() == signal.SIGINT
            try:
                raise Preempted(signal.SIGINT, 3)  # as the loop stops after its checkpoint
            finally:
                signal.raise_signal(signal.SIGINT)  # a copy arriving after the loop: not a second stop
