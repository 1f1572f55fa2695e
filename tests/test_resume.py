"""Never lose a run: exact resume after SIGKILL, pre-emption by signal, refusals (through the CLI)."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from clitools import TINY, console_script, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.rundir import RunLock
from resnet_train.engine.signals import PREEMPTED_EXIT_CODE

pytestmark = pytest.mark.slow

RUN = [
    *TINY,
    "data.image_size=32",
    "data.train_size=512",
    "trainer.batch_size=64",
    "trainer.max_iters=60",
    "trainer.checkpoint_every=10",
    "trainer.log_every=5",
    "trainer.eval_every=20",
    "sched.milestones=[30]",
]


def start(run_dir, *extra):
    return subprocess.Popen(
        [console_script("resnet-train"), *RUN, *extra, f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_checkpoint(run_dir, process, timeout=120):
    sidecar = run_dir / "checkpoints" / "last.pt.sha256"
    deadline = time.monotonic() + timeout
    while not sidecar.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def steps(run_dir, tag):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_sigkill_then_rerun_ends_bitwise_equal_to_the_uninterrupted_run(tmp_path):
    full = run_cli(*RUN, f"hydra.run.dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stdout
    killed = start(tmp_path / "killed")
    wait_for_checkpoint(tmp_path / "killed", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["trainer"]["iteration"]
    assert stopped_at < 60, "the run finished before it could be killed"
    resumed = run_cli(*RUN, f"hydra.run.dir={tmp_path / 'killed'}")
    assert resumed.returncode == 0, resumed.stdout
    assert f"resumed from iteration {stopped_at}" in resumed.stdout
    expected, got = weights(tmp_path / "full"), weights(tmp_path / "killed")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # The curves: no duplicated or missing points after the resume, the same values as without the kill.
    for tag in ("error/train", "loss/train", "error/test"):
        assert steps(tmp_path / "killed", tag) == steps(tmp_path / "full", tag)
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["iterations"] == 60


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])
def test_signal_writes_a_checkpoint_and_exits_with_the_preemption_code(tmp_path, signum):
    process = start(tmp_path)
    wait_for_checkpoint(tmp_path, process)
    first = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["iteration"]
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    assert f"stopped by {signal.Signals(signum).name}" in output
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]
    assert first <= state["iteration"] < 60
    assert not (tmp_path / "metrics.json").exists()


def test_a_signal_while_the_data_loads_stops_at_once_with_the_preemption_code(tmp_path):
    process = subprocess.Popen(
        [console_script("resnet-train"), *TINY, "data.train_size=100000", "data.image_size=32",
         "trainer.max_iters=3", f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in process.stdout:  # the console's lines (train.log holds them until the data has loaded)
        if "loading synthetic" in line:  # the data starts loading
            break
    time.sleep(0.3)  # into the data loading (generating 100,000 images takes seconds)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    assert "stopped by SIGTERM outside the training loop; nothing new to checkpoint; re-run" in output
    assert "Traceback" not in output and not (tmp_path / "checkpoints").exists()


def test_resume_never_refuses_a_used_directory_and_other_models_are_refused(tmp_path):
    done = run_cli(*TINY, "trainer.max_iters=2", "trainer.eval_every=2", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 0, done.stdout
    never = run_cli(*TINY, "trainer.max_iters=2", "trainer.resume=never", f"hydra.run.dir={tmp_path}")
    assert never.returncode == 2 and "trainer.resume=never" in never.stdout and "checkpoints" in never.stdout
    other = run_cli(
        *TINY,
        "model=plain20",
        "trainer.max_iters=4",
        f"trainer.resume={tmp_path}/checkpoints/last.pt",
        f"hydra.run.dir={tmp_path / 'other'}",
    )
    assert other.returncode == 2
    assert "made for another net" in other.stdout and "model.residual: true -> false" in other.stdout
    again = run_cli(*TINY, "trainer.max_iters=2", "trainer.eval_every=2", f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0 and "already complete" in again.stdout


def test_after_a_preemption_the_run_resumes_from_its_own_checkpoint_not_from_resume_path(tmp_path):
    first = run_cli(*RUN, "trainer.max_iters=10", f"hydra.run.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stdout
    path = f"trainer.resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"
    process = start(tmp_path / "run", path)
    wait_for_checkpoint(tmp_path / "run", process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    stopped_at = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["trainer"]["iteration"]
    assert 10 < stopped_at < 60
    again = run_cli(*RUN, path, f"hydra.run.dir={tmp_path / 'run'}")  # the same command (a requeue)
    assert again.returncode == 0, again.stdout
    assert (
        f"resumed from iteration {stopped_at}" in again.stdout
        and "was only where the run started" in again.stdout
    )


def test_config_changes_on_resume_are_refused_in_one_message_or_allowed(tmp_path):
    run = [*TINY, "trainer.max_iters=2", "trainer.eval_every=2", f"hydra.run.dir={tmp_path}"]
    assert run_cli(*run).returncode == 0
    changed = run_cli(*run, "optim.lr=0.05", "data.num_classes=5")
    assert changed.returncode == 2 and "Traceback" not in changed.stdout, changed.stdout
    assert "  optim.lr: 0.1 -> 0.05" in changed.stdout and "  data.num_classes: 10 -> 5" in changed.stdout
    assert "revert them (data.num_classes=10 optim.lr=0.1)" in changed.stdout
    longer = run_cli(*run, "trainer.max_iters=4", "trainer.log_every=1")
    assert longer.returncode == 0, longer.stdout
    assert "trainer.max_iters: 2 -> 4" in longer.stdout and "resumed from iteration 2" in longer.stdout


def test_a_second_command_on_a_running_directory_is_refused(tmp_path):
    with RunLock(tmp_path):  # as a first command running in this directory holds it
        second = run_cli(*TINY, "trainer.max_iters=2", f"hydra.run.dir={tmp_path}")
    assert second.returncode == 2 and "Traceback" not in second.stdout, second.stdout
    assert f"is in use by another resnet-train (pid {os.getpid()} on " in second.stdout
    assert not (tmp_path / "checkpoints").exists()


def test_a_disk_that_fills_during_a_checkpoint_is_one_line_and_leaves_the_previous_one(small_filesystem):
    disk = small_filesystem("1200k")  # room for the run's files and one checkpoint (~640 KB), not two
    result = run_cli(*TINY, "trainer.max_iters=4", "trainer.checkpoint_every=2", "trainer.eval_every=4",
                     f"hydra.run.dir={disk}")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stdout, result.stdout
    assert "No space left on device; kept last.pt" in result.stdout
    assert load_checkpoint(disk / "checkpoints" / "last.pt")["trainer"]["iteration"] == 2
    assert sorted(p.name for p in (disk / "checkpoints").iterdir()) == ["last.pt", "last.pt.sha256"]
