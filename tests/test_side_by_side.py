"""A sweep's jobs side by side on one machine (Hydra's joblib launcher): each on its share of the machine,
each with its own run directory, checkpoint and resume."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from clitools import TINY, console_script, make_config, run_cli
from hydra.types import RunMode
from matplotlib.image import imread
from omegaconf import OmegaConf

from resnet_train.cli.train import JOBLIB_LAUNCHER, job_share
from resnet_train.engine import launch as launcher
from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.distributed import World


def hydra_config(n_jobs, num=0, target=JOBLIB_LAUNCHER, mode=RunMode.MULTIRUN):
    launcher = {"_target_": target, "n_jobs": n_jobs}
    return OmegaConf.create({"mode": mode, "launcher": launcher, "job": {"num": num}})


def test_each_job_takes_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    assert job_share(hydra_config(2)).threads == 8
    assert job_share(hydra_config(3)).threads == 5
    assert job_share(hydra_config(32)).threads == 1  # never fewer than one


def test_each_job_takes_a_gpu_by_its_number(monkeypatch):
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    assert [job_share(hydra_config(8, num)).gpu for num in range(6)] == [0, 1, 2, 3, 0, 1]


def test_one_job_at_a_time_has_no_share():
    assert job_share(hydra_config(2, mode=RunMode.RUN)) is None
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert job_share(hydra_config(2, target=basic)) is None


@pytest.mark.parametrize("cuda", [False, True])
def test_a_job_side_by_side_trains_on_its_share_of_the_machine(monkeypatch, tmp_path, caplog, cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    ran = []

    seen_progress = []

    def worker(config, run_dir, world, join_group, record=None, threads=None):
        ran.append((world, threads, join_group))
        seen_progress.extend([True] if config.trainer.progress else [])
        return {}

    monkeypatch.setattr(launcher, "run_worker", worker)
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="resnet_train"):
            launcher.launch(make_config(), tmp_path, launcher.Share(jobs=4, threads=1, gpus=8, job=3))
    finally:
        torch.set_num_threads(threads)
    assert ran == [(World(local_rank=3), 1, False)]  # its share of the cores; one process, no group
    assert not seen_progress  # lines, not bars, side by side
    assert "one of 4 jobs side by side: 1 thread(s)" in caplog.text
    assert ("GPU 3" in caplog.text) is cuda


@pytest.mark.slow
def test_two_jobs_side_by_side_finish_in_their_own_directories_and_resume(tmp_path):
    sweep = ["-m", "hydra/launcher=side_by_side", "hydra.launcher.n_jobs=2", *TINY, "model=resnet20,plain20",
             "trainer.max_iters=4", "trainer.eval_every=4", "trainer.log_every=2",
             f"hydra.sweep.dir={tmp_path}"]  # fmt: skip
    result = run_cli(*sweep)
    assert result.returncode == 0, result.stdout
    runs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(runs) == 2 and all((run / "checkpoints" / "last.pt").is_file() for run in runs)
    # Each job's share of this machine's cores (the share itself is checked above, for forced core counts).
    share = re.compile(r"one of 2 jobs side by side: \d+ thread\(s\)")
    assert all(share.search((run / "train.log").read_text()) for run in runs)
    # Each line names its job (side by side they interleave).
    lines = [line for line in result.stdout.splitlines() if "iteration 2/4 |" in line]
    assert sorted(line.split("] ")[1].split(":")[0] for line in lines) == ["plain8", "resnet8"], result.stdout
    again = run_cli(*sweep)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("is already complete (4 iterations)") == 2, again.stdout


@pytest.mark.slow
def test_fig6_cpu_pipeline_trains_side_by_side_then_draws_and_tabulates(tmp_path):
    """`make fig6-cpu BUDGET=...`'s script and experiment (two jobs side by side), with tiny nets, resuming
    the sweep a plan sized at 4 iterations (OUT/plan.json): a budgeted sweep re-run keeps its length."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "BIN": str(Path(sys.executable).parent), "ITERS": "800", "EVALS": "2",
           "BUDGET": "60", "EXPERIMENT": "cifar_plain_vs_resnet_cpu", "MODELS": "resnet20,plain20",
           "OUT": str(tmp_path)}  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps({"fit": {"max_iters": 4}}))
    tiny = [arg for arg in TINY if not arg.startswith("model=")]
    result = subprocess.run(
        ["bash", str(root / "scripts" / "fig6.sh"), *tiny, "model.depth=8"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "resuming the sweep planned in" in result.stdout and "(4 iterations a run)" in result.stdout
    assert result.stdout.count("one of 2 jobs side by side") == 2, result.stdout[-3000:]
    assert imread(tmp_path / "fig6.png")[..., :3].std() > 0.05
    table = (tmp_path / "table.md").read_text()
    assert "plain-8" in table and "ResNet-8" in table, table
    assert "equal depth: ResNet-8 has a lower training error than plain-8" in table, table  # the claims
    assert sorted(p.name for p in (tmp_path / "aggregate").iterdir()) == ["ResNet-8", "plain-8"]
    metrics = [json.loads(p.read_text()) for p in tmp_path.glob("*/metrics.json")]
    assert sorted(m["iterations"] for m in metrics) == [4, 4]
    # A sweep planned for another command (other models) is not resumed with this command's length.
    (tmp_path / "plan.args").write_text("model=resnet110\n")
    other = subprocess.run(
        ["bash", str(root / "scripts" / "fig6.sh"), *tiny, "model.depth=8"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert other.returncode == 2 and "was planned for other settings" in other.stdout, other.stdout


def test_fig6_with_a_budget_plans_every_seed_and_stops_before_training_when_nothing_fits(tmp_path):
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "BIN": str(Path(sys.executable).parent), "EVALS": "2", "MODELS": "resnet20",
           "EXPERIMENT": "cifar_plain_vs_resnet", "OUT": str(tmp_path / "out"),
           "BUDGET": "0.0001", "SEEDS": "3"}  # fmt: skip
    tiny = [arg for arg in TINY if not arg.startswith("model=")] + ["model.depth=8"]
    result = subprocess.run(
        ["bash", str(root / "scripts" / "fig6.sh"), *tiny], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-3000:]
    assert "timing the nets on this machine" in result.stdout and "3 job(s) in" in result.stdout
    assert "iterations a job fit a budget of" in result.stdout
    assert not list((tmp_path / "out").iterdir())  # nothing trained, no plan kept


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl_c_to_the_group", "sigterm_to_the_sweep_alone"])
def test_a_signal_to_a_sweep_side_by_side_lets_every_job_finish_its_checkpoint_exit_75(tmp_path, to_group):
    sweep = [console_script("resnet-train"), "-m", "hydra/launcher=side_by_side", "hydra.launcher.n_jobs=2",
             *TINY, "model=resnet20,plain20,resnet32", "trainer.max_iters=4000", "trainer.eval_every=4000",
             "trainer.log_every=2", "trainer.checkpoint_every=2", f"hydra.sweep.dir={tmp_path}"]  # fmt: skip
    process = subprocess.Popen(
        sweep, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        while len(list(tmp_path.glob("*/checkpoints/last.pt.sha256"))) < 2:  # both jobs are training
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.05)
        if to_group:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at a terminal: the jobs get it twice
        else:
            process.send_signal(signal.SIGTERM)  # `kill PID`: the sweep passes it on
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 75, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "0 of 3 jobs finished; stopped (exit code 75; re-run the sweep to resume)" in output, output
    assert output.count(f"stopped by {'SIGINT' if to_group else 'SIGTERM'} at iteration") >= 2, output
    assert "model=resnet32: not started: the sweep was stopped" in output, output
    checkpoints = sorted(tmp_path.glob("*/checkpoints/last.pt"))
    assert len(checkpoints) == 2 and not list(tmp_path.glob("*/checkpoints/*.tmp"))
    assert all(load_checkpoint(path)["trainer"]["iteration"] >= 2 for path in checkpoints)
