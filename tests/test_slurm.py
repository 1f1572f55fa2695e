"""Sweeps through a real SLURM scheduler: the project's `hydra/launcher=slurm` on a one-machine cluster.

The cluster (munged, slurmctld, slurmd) comes from scripts/local_slurm.sh, started once for these tests. They
run only when selected (`pytest -m slurm`, as CI does in a step of its own): they need root and Debian's
slurm-wlm and munge, and when selected they fail, naming the reason, where the cluster cannot start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch
from clitools import TINY, console_script

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.distributed import free_port

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local_slurm.sh"
# The launcher config asks for GPUs, 8 cores and 64 GB a task; this node has 2 cores and no GPU.
ON_THIS_NODE = [
    "hydra/launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]
DEADLINE_S = 240


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> dict:
    """The environment that points SLURM's commands (and submitit) at the local cluster."""
    state = tmp_path_factory.mktemp("slurm")
    env = {
        **os.environ,
        "SLURM_LOCAL_DIR": str(state),
        "SLURM_LOCAL_CTLD_PORT": str(free_port()),
        "SLURM_LOCAL_SLURMD_PORT": str(free_port()),
    }
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    if started.returncode:
        pytest.fail(f"the local SLURM cluster did not start: {started.stderr.strip()}", pytrace=False)
    # One thread a task: a run then computes the same numbers whichever process layout it has.
    yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "OMP_NUM_THREADS": "1"}
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, check=True)


def sweep(slurm: dict, sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        [console_script("resnet-train"), "-m", *ON_THIS_NODE, *TINY, *overrides,
         f"hydra.sweep.dir={sweep_dir}"],
        env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_until(condition, process: subprocess.Popen, what: str):
    """Poll `condition` until it returns something true; fail, with the sweep's output, if the sweep ends
    first or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    while not (value := condition()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} never happened; the sweep's output:\n{process.communicate()[0]}")
        time.sleep(0.2)
    return value


def run_dir(sweep_dir: Path, override: str) -> Path | None:
    """The run directory of the sweep's job with `override` among its overrides, once Hydra made it."""
    for path in sweep_dir.glob("*/.hydra/overrides.yaml"):
        if f"- {override}\n" in path.read_text():
            return path.parents[1]
    return None


def logged(sweep_dir: Path, override: str, pattern: str):
    """The first match of `pattern` in the train.log of the job with `override`, or None."""
    run = run_dir(sweep_dir, override)
    log = run / "train.log" if run else None
    return re.search(pattern, log.read_text()) if log and log.exists() else None


def job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM job ids submitit used for the sweep's jobs (its log folders, .submitit/<id>)."""
    return sorted(p.parent.name for p in (sweep_dir / ".submitit").glob("*/*_submitted.pkl"))


def scontrol(slurm: dict, *args: str) -> str:
    return subprocess.run(["scontrol", *args], env=slurm, capture_output=True, text=True, check=True).stdout


def iterations_per_second(slurm: dict, run: Path) -> float:
    """This node's speed, now, for the tests' two-worker run: a short run's own measure (metrics.json's
    images/s over the global batch of 32)."""
    steps = ["trainer.max_iters=200", "trainer.log_every=20", "trainer.eval_every=200", "trainer.devices=2"]
    done = subprocess.run(
        [console_script("resnet-train"), *TINY, *steps, f"hydra.run.dir={run}"],
        env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return json.loads((run / "metrics.json").read_text())["images_per_s"] / 32


def test_a_two_task_job_longer_than_its_time_limit_is_warned_requeued_and_ends_as_an_uninterrupted_run(
    slurm, tmp_path
):
    # A 1-minute limit; SLURM checks limits every 30 s and sends --signal=USR2@1 at the first check within
    # 1 + 30 s of the end: 29-59 s into each run, after the workers have started. The work is 75 s of this
    # node's two-worker training as measured now, more than any one such run holds, so the job is warned,
    # checkpointed and requeued at least once on a quiet node or a busy one.
    iters = 20 * round(75 * iterations_per_second(slurm, tmp_path / "speed") / 20)
    steps = [f"trainer.max_iters={iters}", "trainer.log_every=20", f"trainer.eval_every={iters}",
             "trainer.devices=2"]  # fmt: skip
    sweep_dir, job_key = tmp_path / "sweep", f"trainer.max_iters={iters}"
    limits = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=1"]
    job = sweep(slurm, sweep_dir, *steps, *limits)
    output, _ = job.communicate(timeout=3 * DEADLINE_S)
    assert job.returncode == 0, output
    assert "1 of 1 jobs finished" in output
    (job_id,) = job_ids(sweep_dir)
    submission = (sweep_dir / ".submitit" / job_id / f"{job_id}_submission.sh").read_text()
    assert "#SBATCH --time=1" in submission and "#SBATCH --signal=USR2@1" in submission
    restarts = int(re.search(r"Restarts=(\d+)", scontrol(slurm, "show", "job", job_id))[1])
    log = (run_dir(sweep_dir, job_key) / "train.log").read_text()
    stops = re.findall(r"stopped by SIGUSR2 at iteration (\d+); checkpoint written", log)
    assert restarts >= 1, f"{iters} iterations fit in one 1-minute run on this node\n{log}"
    assert stops and all(0 < int(iteration) < iters for iteration in stops), log
    assert len(re.findall(r"resumed from iteration", log)) >= 1, log
    # Ranks and world size came from SLURM's variables:
    assert re.search(r"batch 32 on 2 process\(es\)", log)
    # The uninterrupted run trains after the job, not beside it: on two cores a run beside it slows the job's
    # start past the warning, which then reaches Python before submitit has installed its handler.
    reference = subprocess.run(
        [console_script("resnet-train"), *TINY, *steps, f"hydra.run.dir={tmp_path / 'reference'}"],
        env=slurm, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert reference.returncode == 0, reference.stdout
    expected = load_checkpoint(tmp_path / "reference" / "checkpoints" / "last.pt")["model"]
    got = load_checkpoint(run_dir(sweep_dir, job_key) / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(expected[key], got[key]) for key in expected)


def test_a_job_warned_before_it_trains_is_requeued_and_trains_in_its_next_run(slurm, tmp_path):
    # A warning (here a pre-emption) may come before the loop runs, while the workers load their data
    # (50,000 generated images: seconds): nothing new to save, the job stops at once, submitit requeues it.
    job = sweep(slurm, tmp_path, "trainer.max_iters=20", "trainer.log_every=10", "trainer.devices=2",
                "data.train_size=50000")  # fmt: skip

    def loading() -> bool:  # rank 0's output, in submitit's log of the job
        return any("loading synthetic" in out.read_text() for out in tmp_path.glob(".submitit/*/*_0_log.out"))

    wait_until(loading, job, "the workers loading their data")
    (job_id,) = job_ids(tmp_path)
    subprocess.run(["scancel", "--signal=USR2", job_id], env=slurm, check=True)
    output, _ = job.communicate(timeout=DEADLINE_S)
    assert job.returncode == 0, output
    rank_0 = (tmp_path / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert "stopped by SIGUSR2 outside the training loop; nothing new to checkpoint" in rank_0, rank_0
    assert "Restarts=1" in scontrol(slurm, "show", "job", job_id)  # submitit requeued it
    checkpoint = load_checkpoint(run_dir(tmp_path, "trainer.max_iters=20") / "checkpoints" / "last.pt")
    assert checkpoint["trainer"]["iteration"] == 20


def test_a_two_job_sweep_runs_one_slurm_job_each_and_names_the_cancelled_one(slurm, tmp_path):
    job = sweep(slurm, tmp_path, "trainer.max_iters=4,100000", "trainer.log_every=2", "trainer.eval_every=4")
    wait_until(lambda: len(job_ids(tmp_path)) == 2, job, "two SLURM jobs")
    long_run = "trainer.max_iters=100000"
    wait_until(lambda: logged(tmp_path, long_run, "iteration 2/"), job, "the long job's first iteration")
    array_job = job_ids(tmp_path)[-1]  # submitit's folder of the second job: <array id>_1
    subprocess.run(["scancel", array_job], env=slurm, check=True)
    output, _ = job.communicate(timeout=DEADLINE_S)
    assert job.returncode == 75, output
    stopped = logged(tmp_path, long_run, r"stopped by SIGTERM at iteration (\d+); checkpoint written")
    assert stopped, output
    summary = [line for line in output.splitlines() if "jobs finished" in line]
    assert len(summary) == 1 and "1 of 2 jobs finished; stopped (exit code 75" in summary[0], output
    assert f"trainer.max_iters=100000: stopped by SIGTERM at iteration {stopped[1]}" in summary[0]
    checkpoint = load_checkpoint(run_dir(tmp_path, long_run) / "checkpoints" / "last.pt")
    assert checkpoint["trainer"]["iteration"] == int(stopped[1])
