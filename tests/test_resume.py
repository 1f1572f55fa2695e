"""Never lose a run: exact resume after SIGKILL, pre-emption by signal, refusals (through the CLI)."""

import json
import signal
import subprocess
import time

import pytest
import torch
from clitools import TINY, console_script, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.loop import PREEMPTED_EXIT_CODE

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
    assert "made for model=resnet8" in other.stdout and "asks for model=plain8" in other.stdout
    again = run_cli(*TINY, "trainer.max_iters=2", "trainer.eval_every=2", f"hydra.run.dir={tmp_path}")
    assert again.returncode == 0 and "already complete" in again.stdout
