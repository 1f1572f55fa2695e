"""Never lose a run: exact resume after SIGKILL, pre-emption by signal (through the console script, whose
process is the point), and the refusals and config changes of a re-run (in-process)."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import torch
from clitools import TINY, console_script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.rundir import RunLock
from resnet_train.engine.signals import PREEMPTED_EXIT_CODE
from resnet_train.errors import UserError

RUN = [
    "trainer.precision=fp32",  # the same arithmetic in this process and in the console script's, on any CPU
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
        [console_script("resnet-train"), *TINY, *RUN, *extra, f"hydra.run.dir={run_dir}"],
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


def wait_for_line(process, text: str) -> list[str]:
    """The process's output up to the first line that contains `text` (it fails if the process ends first)."""
    lines = []
    while not lines or text not in lines[-1]:
        line = process.stdout.readline()
        assert line, "".join(lines) + f"\nthe process ended before logging {text!r}"
        lines.append(line)
    return lines


def wait_for_cpu_time(pid: int, seconds: float, timeout: float = 300) -> None:
    """Until process `pid` has run `seconds` more of CPU time (user and system): progress, not the clock."""

    def cpu_time():
        fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in ticks

    start, deadline = cpu_time(), time.monotonic() + timeout
    while cpu_time() < start + seconds:
        assert time.monotonic() < deadline, f"process {pid} made no progress"
        time.sleep(0.01)


def weights(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def steps(run_dir, tag):
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.slow
def test_sigkill_then_rerun_ends_bitwise_equal_to_the_uninterrupted_run(tmp_path, train_job):
    train_job(*RUN, run_dir=tmp_path / "full")
    killed = start(tmp_path / "killed")
    wait_for_checkpoint(tmp_path / "killed", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stopped_at = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["trainer"]["iteration"]
    assert stopped_at < 60, "the run finished before it could be killed"
    resumed = train_job(*RUN, run_dir=tmp_path / "killed")
    assert f"resumed from iteration {stopped_at}" in resumed.log
    expected, got = weights(tmp_path / "full"), weights(tmp_path / "killed")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # The curves: no duplicated or missing points after the resume, the same values as without the kill.
    for tag in ("error/train", "loss/train", "error/test"):
        assert steps(tmp_path / "killed", tag) == steps(tmp_path / "full", tag)
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["iterations"] == 60


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_signal_while_the_data_loads_stops_at_once_with_the_preemption_code(tmp_path):
    process = subprocess.Popen(
        [console_script("resnet-train"), *TINY, "data.train_size=100000", "data.image_size=32",
         "trainer.max_iters=3", f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    # Logged on the console just before the data is generated (100,000 images: seconds; train.log holds the
    # lines until the data has loaded). A signal inside that log call would stop the run only after its first
    # step (the log handler swallows the exception), so the signal waits until the process has computed a
    # while past it.
    before = wait_for_line(process, "loading synthetic (generated images)")
    wait_for_cpu_time(process.pid, 0.1)
    process.send_signal(signal.SIGTERM)
    output = "".join(before) + process.communicate(timeout=120)[0]
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    assert "stopped by SIGTERM outside the training loop; nothing new to checkpoint; re-run" in output
    assert "Traceback" not in output and not (tmp_path / "checkpoints").exists()


def test_resume_never_refuses_a_used_directory_and_other_models_are_refused(tmp_path, train_job):
    train_job("trainer.max_iters=2", "trainer.eval_every=2", run_dir=tmp_path)
    with pytest.raises(UserError) as never:
        train_job("trainer.max_iters=2", "trainer.resume=never", run_dir=tmp_path)
    assert never.value.exit_code == 2 and "trainer.resume=never" in str(never.value)
    assert "checkpoints" in str(never.value)
    with pytest.raises(UserError) as other:
        train_job("model=plain20", "trainer.max_iters=4", f"trainer.resume={tmp_path}/checkpoints/last.pt",
                  run_dir=tmp_path / "other")  # fmt: skip
    assert other.value.exit_code == 2
    assert "made for another net" in str(other.value) and "model.residual: true -> false" in str(other.value)
    again = train_job("trainer.max_iters=2", "trainer.eval_every=2", run_dir=tmp_path)
    assert "already complete" in again.log


@pytest.mark.slow
def test_after_a_preemption_the_run_resumes_from_its_own_checkpoint_not_from_resume_path(tmp_path, train_job):
    train_job(*RUN, "trainer.max_iters=10", run_dir=tmp_path / "first")
    path = f"trainer.resume={tmp_path / 'first' / 'checkpoints' / 'last.pt'}"
    process = start(tmp_path / "run", path)
    wait_for_checkpoint(tmp_path / "run", process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    stopped_at = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["trainer"]["iteration"]
    assert 10 < stopped_at < 60
    again = train_job(*RUN, path, run_dir=tmp_path / "run")  # the same command (a requeue)
    assert f"resumed from iteration {stopped_at}" in again.log
    assert "was only where the run started" in again.log


def test_config_changes_on_resume_are_refused_in_one_message_or_allowed(tmp_path, train_job):
    run = ["trainer.max_iters=2", "trainer.eval_every=2"]
    train_job(*run, run_dir=tmp_path)
    with pytest.raises(UserError) as changed:
        train_job(*run, "optim.lr=0.05", "data.num_classes=5", run_dir=tmp_path)
    message = str(changed.value)
    assert changed.value.exit_code == 2
    assert "  optim.lr: 0.1 -> 0.05" in message and "  data.num_classes: 10 -> 5" in message
    assert "revert them (data.num_classes=10 optim.lr=0.1)" in message
    longer = train_job(*run, "trainer.max_iters=4", "trainer.log_every=1", run_dir=tmp_path)
    assert "trainer.max_iters: 2 -> 4" in longer.log and "resumed from iteration 2" in longer.log


def test_a_second_command_on_a_running_directory_is_refused(tmp_path, train_job):
    with RunLock(tmp_path):  # as a first command running in this directory holds it
        holder = re.escape(f"is in use by another resnet-train (pid {os.getpid()} on ")
        with pytest.raises(UserError, match=holder) as second:
            train_job("trainer.max_iters=2", run_dir=tmp_path)
    assert second.value.exit_code == 2
    assert not (tmp_path / "checkpoints").exists()


def test_a_disk_that_fills_during_a_checkpoint_is_one_line_and_leaves_the_previous_one(
    small_filesystem, train_job
):
    disk = small_filesystem("1200k")  # room for the run's files and one checkpoint (~640 KB), not two
    with pytest.raises(UserError, match="No space left on device; kept last.pt") as full:
        train_job("trainer.max_iters=4", "trainer.checkpoint_every=2", "trainer.eval_every=4", run_dir=disk)
    assert full.value.exit_code == 2
    assert load_checkpoint(disk / "checkpoints" / "last.pt")["trainer"]["iteration"] == 2
    assert sorted(p.name for p in (disk / "checkpoints").iterdir()) == ["last.pt", "last.pt.sha256"]
