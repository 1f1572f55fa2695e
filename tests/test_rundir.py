"""The rules of a run directory: the lock, which checkpoint a resume takes, which config changes it accepts,
and the TensorBoard points of an attempt that left no checkpoint."""

import logging
import os
import signal
import subprocess
import sys

import pytest
from clitools import compose_config
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.config import config_to_plain
from resnet_train.engine import checkpoint as checkpoints
from resnet_train.engine.checkpoint import CheckpointError, save_checkpoint
from resnet_train.engine.logger import TRAIN_LOSS, RunLogger
from resnet_train.engine.rundir import LOCK_NAME, RunLock, find_resume_checkpoint
from resnet_train.errors import UserError


def config(*overrides, **changes):
    """The composed config of `overrides` as plain values, with `changes` given as {"optim.lr": 0.05}."""
    plain = config_to_plain(OmegaConf.to_object(compose_config(*overrides)))
    for key, value in changes.items():
        group, name = key.split(".")
        plain[group][name] = value
    return plain


def checkpoint(directory, iteration, cfg=None, warming_up=False):
    state = {
        "format": checkpoints.FORMAT_VERSION,
        "model": {},
        "optimizer": {},
        "scaler": {},
        "rng": {},
        "trainer": {"iteration": iteration},
        "schedule": {"warming_up": warming_up},
        "config": cfg or config(),
        "data_identity": {},
        "input": {},
    }
    save_checkpoint(directory, state)


# ---- the lock ------------------------------------------------------------------------------------------
def test_a_second_command_on_a_held_directory_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UserError, match=rf"in use by another resnet-train \(pid {os.getpid()} on "):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released at the end of the first
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder_code = (  # what RunLock does, without importing torch (fast)
        "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write(f'pid {os.getpid()}'); f.flush(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(tmp_path / LOCK_NAME)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"in use by another resnet-train .pid {holder.pid}"):
        RunLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with RunLock(tmp_path):
        pass


# ---- which checkpoint ----------------------------------------------------------------------------------
def test_resume_path_is_only_the_start_once_the_run_has_its_own_checkpoint(tmp_path):
    checkpoint(tmp_path / "start", 10)
    path = str(tmp_path / "start" / "last.pt")
    run = tmp_path / "run"
    assert find_resume_checkpoint(path, run, config())["trainer"]["iteration"] == 10
    checkpoint(run / "checkpoints", 20)  # the run was pre-empted after its own checkpoint at 20
    assert find_resume_checkpoint(path, run, config())["trainer"]["iteration"] == 20
    assert find_resume_checkpoint("auto", run, config())["trainer"]["iteration"] == 20


def test_resume_never_refuses_a_used_directory(tmp_path):
    assert find_resume_checkpoint("never", tmp_path, config()) is None
    checkpoint(tmp_path / "checkpoints", 10)
    with pytest.raises(UserError, match="trainer.resume=never, but .* already holds checkpoints"):
        find_resume_checkpoint("never", tmp_path, config())


# ---- config changes on resume --------------------------------------------------------------------------
def test_a_change_of_the_trajectory_is_refused_one_line_per_key_with_the_ways_out(tmp_path):
    checkpoint(tmp_path / "checkpoints", 10)
    changed = config(**{"optim.lr": 0.05, "data.num_classes": 5, "trainer.log_every": 1})
    with pytest.raises(UserError) as refused:
        find_resume_checkpoint("auto", tmp_path, changed)
    message = str(refused.value)
    assert "\n  optim.lr: 0.1 -> 0.05\n" in message and "\n  data.num_classes: 10 -> 5\n" in message
    assert "log_every" not in message  # allowed, so not listed
    assert "revert them (data.num_classes=10 optim.lr=0.1)" in message
    assert "hydra.run.dir=NEW_DIR" in message and f"trainer.resume={tmp_path}/checkpoints/last.pt" in message


def test_changes_that_leave_the_trajectory_alone_are_allowed_and_logged(tmp_path, caplog):
    checkpoint(tmp_path / "checkpoints", 10)
    changed = config(**{"trainer.log_every": 1, "trainer.max_iters": 100000, "data.workers": 2,
                        "trainer.progress": False, "trainer.resume": "auto"})  # fmt: skip
    with caplog.at_level(logging.INFO, logger="resnet_train"):
        assert find_resume_checkpoint("auto", tmp_path, changed)["trainer"]["iteration"] == 10
    assert (
        "trainer.max_iters: 64000 -> 100000" in caplog.text and "trainer.log_every: 100 -> 1" in caplog.text
    )


@pytest.mark.parametrize(
    ("change", "sched", "why"),
    [
        ({"trainer.max_iters": 5}, "sched=paper_cifar", "shorter than the checkpoint's iteration"),
        ({"trainer.max_iters": 100000}, "sched=cosine", "cosine spreads over max_iters"),
        ({"trainer.eval_every": 7}, "sched=paper_imagenet", "the plateau is measured at evaluations"),
    ],
)
def test_settings_that_steer_the_run_in_some_setups_are_refused_there(tmp_path, change, sched, why):
    checkpoint(tmp_path / "checkpoints", 10, config(sched))
    with pytest.raises(UserError, match=list(change)[0]):
        find_resume_checkpoint("auto", tmp_path, config(sched, **change))


def test_log_every_is_refused_while_the_warm_up_waits_for_a_logging_point(tmp_path):
    checkpoint(tmp_path / "checkpoints", 10, warming_up=True)
    with pytest.raises(UserError, match="trainer.log_every: 100 -> 1"):
        find_resume_checkpoint("auto", tmp_path, config(**{"trainer.log_every": 1}))


def test_a_starting_checkpoint_must_fit_the_net_and_may_differ_in_the_rest(tmp_path, caplog):
    checkpoint(tmp_path / "start", 10)
    path = str(tmp_path / "start" / "last.pt")
    with pytest.raises(CheckpointError, match=r"another net.*\n  model.residual: true -> false"):
        find_resume_checkpoint(path, tmp_path / "run", config(**{"model.residual": False}))
    with caplog.at_level(logging.INFO, logger="resnet_train"):
        found = find_resume_checkpoint(path, tmp_path / "run", config(**{"optim.lr": 0.01}))
    assert found["trainer"]["iteration"] == 10 and "optim.lr: 0.1 -> 0.01" in caplog.text


# ---- TensorBoard after a kill before the first checkpoint ----------------------------------------------
def log_points(run_dir, steps):
    logger = RunLogger(run_dir, enabled=True, start_iteration=0, max_iters=10, progress=False, synthetic=True)
    for step in steps:
        logger.train_point(step, 1.0 / step, 0.5, 0.1, 100.0)
    logger.close()


def test_a_fresh_start_over_the_events_of_a_killed_attempt_does_not_double_its_points(tmp_path):
    log_points(tmp_path, [5, 10, 15])  # killed before its first checkpoint: nothing to resume
    log_points(tmp_path, [5, 10, 15, 20])
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars(TRAIN_LOSS)] == [5, 10, 15, 20]
