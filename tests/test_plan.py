"""`resnet-plan`: every job of a sweep composed as `resnet-train -m` runs it, its state read from its run
directory, each distinct net timed, and the estimates' arithmetic (engine/estimate.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from clitools import TINY, console_script

from resnet_train.cli import plan as plan_cli
from resnet_train.config import DeviceKind, TrainerConfig
from resnet_train.engine.estimate import evaluations, fit_iters, job_seconds, sweep_seconds
from resnet_train.engine.launch import Share
from resnet_train.engine.probe import Timing, rank_share
from resnet_train.engine.rundir import RunLock
from resnet_train.errors import UserError

TIMING = Timing(data_s=4.0, build_s=1.0, step_s=0.5, eval_batch_s=2.0, eval_batches=5)  # eval 10 s, setup 5 s


def run_plan(tmp_path: Path, *overrides: str, budget: float | None = None) -> dict:
    """resnet-plan in this process on a sweep in tmp_path/sweep; returns its plan as --json writes it."""
    out = tmp_path / "plan.json"
    args = [*TINY, *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", "--steps", "2"]
    args += ["--json", str(out), "--force"]
    if budget is not None:
        args += ["--budget", str(budget)]
    plan_cli.main(args)
    return json.loads(out.read_text())


def test_evaluations_are_the_loops_every_eval_every_th_iteration_and_the_last():
    for start, max_iters, every in [
        (0, 8, 4),
        (0, 10, 4),
        (3, 10, 4),
        (4, 8, 4),
        (8, 8, 4),
        (0, 7, 1),
        (5, 6, 10),
    ]:
        loop = sum(1 for i in range(start + 1, max_iters + 1) if i % every == 0 or i == max_iters)
        assert evaluations(start, max_iters, every) == loop, (start, max_iters, every)


def test_a_jobs_time_is_its_setup_steps_and_evaluations():
    assert job_seconds(TIMING, 0, 100, 25) == 5 + 100 * 0.5 + 4 * 10
    assert job_seconds(TIMING, 60, 100, 25) == 5 + 40 * 0.5 + 2 * 10  # resumed at 60: evaluations at 75, 100


def test_the_sweep_runs_each_job_on_the_first_free_slot_in_order():
    assert sweep_seconds([10, 10, 5, 5], slots=2) == 15
    assert sweep_seconds([10, 1, 1, 1], slots=2) == 10
    assert sweep_seconds([10, 1, 1, 1], slots=1) == 13
    assert sweep_seconds([3, 4], slots=256) == 4  # a SLURM array wider than the sweep
    assert sweep_seconds([], slots=2) == 0


def test_the_fit_is_the_largest_multiple_within_the_budget():
    assert fit_iters(lambda iters: 10 + iters, budget_s=100, multiple=8) == 88
    assert fit_iters(lambda iters: 10 + iters, budget_s=98, multiple=8) == 88
    assert fit_iters(lambda iters: 10 + iters, budget_s=17, multiple=8) is None


def test_a_budget_keeps_each_jobs_number_of_evaluations():
    jobs = [
        plan_cli.PlannedJob(num, [], "", "new", max_iters=800, eval_every=200, timing=TIMING)
        for num in range(3)
    ]
    fit = plan_cli.budget_fit(jobs, slots=2, budget_s=3600)
    # Two slots, three jobs of 5 s + 0.5 s a step + 4 evaluations of 10 s: 2 * (45 + 0.5 iters) <= 3600
    assert fit["max_iters"] == 3508  # 45 + 0.5 iters <= 1800, a multiple of 4
    assert fit["eval_every"] == 877 and fit["evaluations"] == 4
    assert fit["sweep_s"] == 2 * job_seconds(TIMING, 0, 3508, 877) <= 3600
    assert plan_cli.budget_fit(jobs, slots=2, budget_s=3700, spent_s=100) == fit  # the plan's own time counts
    with pytest.raises(UserError, match="no job of the sweep can run"):
        plan_cli.budget_fit([plan_cli.PlannedJob(0, [], "", "refused")], slots=2, budget_s=3600)
    # Below --min-iters (fig6.sh: the shortest run a figure means anything at) the budget is refused, naming
    # the budget the minimum takes: 2 * (45 + 0.5 * 4000) s = 68.2 min.
    with pytest.raises(UserError, match="fits 3508 iterations a job, fewer than the 4000 .* of 69 min"):
        plan_cli.budget_fit(jobs, slots=2, budget_s=3600, min_iters=4000)


@pytest.mark.parametrize("target", ["run/checkpoints/last.pt", "run/metrics.json", "folder"])
def test_the_plan_is_never_written_over_a_run_file_or_a_folder(tmp_path, caplog, target):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "folder").mkdir()
    for name in ("checkpoints/last.pt", "metrics.json"):
        (tmp_path / "run" / name).write_text("kept")
    with pytest.raises(SystemExit) as stopped:
        plan_cli.main([*TINY, "--json", str(tmp_path / target), "--force"])
    assert stopped.value.code == 2 and "--json" in caplog.text
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_text() == "kept"
    assert (tmp_path / "run" / "metrics.json").read_text() == "kept"


@pytest.mark.slow
def test_the_plan_finds_the_sweeps_own_directories_and_their_states(tmp_path, train_job, capsys):
    steps = ["trainer.max_iters=8", "trainer.eval_every=4", "trainer.seed=0,1,2,3"]
    fresh = run_plan(tmp_path, *steps)
    assert [job["state"] for job in fresh["jobs"]] == ["new"] * 4
    assert not (tmp_path / "sweep").exists()  # a plan writes nothing
    # The real sweep for seed 0 lands where the plan said it would; then seed 1 stopped half way (as a
    # shorter run the same job resumes from), seed 2 is being run by another command, seed 3 untouched.
    done = subprocess.run(
        [console_script("resnet-train"), "-m", *TINY, *steps[:2], "trainer.seed=0",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [Path(job["run_dir"]) for job in fresh["jobs"]]
    assert (runs[0] / "metrics.json").exists()
    train_job("trainer.max_iters=4", "trainer.eval_every=4", "trainer.seed=1", run_dir=runs[1])
    capsys.readouterr()
    with RunLock(runs[2]):
        planned = run_plan(tmp_path, *steps)
    table = capsys.readouterr().out
    jobs = planned["jobs"]
    assert [job["state"] for job in jobs] == ["finished", "resumes", "running", "new"]
    assert jobs[1]["start"] == 4 and f"pid {os.getpid()}" in jobs[2]["reason"]
    assert "finished (8)" in table and "resumes at 4" in table and "4 -> 8" in table
    assert f"job 2 is running now: pid {os.getpid()}" in table
    # One timing for the one net; each job to run: setup, its steps and evaluations; the sweep their sum.
    timing = jobs[3]["timing"]
    assert jobs[1]["timing"] == timing and jobs[0]["estimate_s"] is None and jobs[2]["estimate_s"] is None
    setup = timing["data_s"] + timing["build_s"]
    evaluation = timing["eval_batch_s"] * timing["eval_batches"]
    assert timing["eval_batches"] == 1  # 128 test images in batches of 1000
    assert jobs[1]["estimate_s"] == pytest.approx(setup + 4 * timing["step_s"] + 1 * evaluation)
    assert jobs[3]["estimate_s"] == pytest.approx(setup + 8 * timing["step_s"] + 2 * evaluation)
    assert planned["sweep_s"] == pytest.approx(jobs[1]["estimate_s"] + jobs[3]["estimate_s"])
    assert "timed 1 distinct net(s)" in table and "one job after another" in table


def test_a_job_the_trainer_would_refuse_is_named_with_its_reason(tmp_path, capsys):
    planned = run_plan(tmp_path, "model.depth=8,9", "trainer.max_iters=4", "optim.lr=0.1,-1")
    swept = ("model.depth", "optim.lr")
    states = {
        tuple(o for o in job["overrides"] if o.startswith(swept)): (job["state"], job["reason"])
        for job in planned["jobs"]
    }
    assert states[("model.depth=8", "optim.lr=0.1")] == ("new", None)
    assert states[("model.depth=9", "optim.lr=0.1")][0] == "refused"
    assert "got 9" in states[("model.depth=9", "optim.lr=0.1")][1]  # the net's own message
    assert "out of range: optim.lr=-1.0" in states[("model.depth=8", "optim.lr=-1")][1]
    assert "job 2 would be refused: CIFAR nets have 6n+2 layers" in capsys.readouterr().out
    no_data = [o for o in TINY if not o.startswith("data")] + [
        "data=cifar10",
        f"data.root={tmp_path / 'none'}",
    ]
    plan_cli.main([*no_data, "trainer.seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    table = capsys.readouterr().out
    assert table.count("would be refused: cifar10 not found under") == 2, table  # the data's own message


@pytest.mark.slow
def test_jobs_side_by_side_are_timed_side_by_side_on_their_share_of_the_cores(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # 4 cores, 2 jobs at once: 2 threads each
    planned = run_plan(
        tmp_path, "trainer.max_iters=8", "sched.milestones=[4,6]", "model.residual=true,false",
        "trainer.seed=0,1", "hydra/launcher=side_by_side", "hydra.launcher.n_jobs=2", budget=5,
    )  # fmt: skip
    assert planned["launcher"] == {"name": "joblib", "slots": 2, "jobs": 2, "threads": 2, "gpus": 0, "job": 0}
    estimates = [job["estimate_s"] for job in planned["jobs"]]
    assert planned["sweep_s"] == pytest.approx(sweep_seconds(estimates, 2))
    assert len({json.dumps(job["timing"]) for job in planned["jobs"]}) == 2  # one per net, not per seed
    fit = planned["fit"]
    assert fit["max_iters"] % 4 == 0 and fit["sweep_s"] <= fit["budget_s"] < 5 * 60
    out = capsys.readouterr().out
    assert "2 side by side, 2 thread(s) each" in out and "2 copies side by side" in out
    assert f"trainer.max_iters={fit['max_iters']} fits" in out
    # paper_cifar's milestones (4 and 6 of 8 iterations) move with the length:
    milestones = [round(fit["max_iters"] / 2), round(fit["max_iters"] * 3 / 4)]
    assert f"sched.milestones=[{milestones[0]},{milestones[1]}]" in out


def test_the_launchers_parallelism_on_gpus_and_under_slurm(monkeypatch):
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    sweep, jobs = plan_cli.compose_sweep(
        [*TINY, "trainer.seed=0,1,2", "hydra/launcher=side_by_side", "hydra.launcher.n_jobs=3"]
    )
    side = plan_cli.launcher_plan(sweep, jobs, to_time=2)
    assert side.slots == 3 and side.placement == Share(2, 5, 2)  # two left to run; copy i on GPU i mod 2
    assert "2 GPU(s) shared" in side.note
    sweep, jobs = plan_cli.compose_sweep(
        [*TINY, "trainer.seed=0,1", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=8"]
    )
    slurm = plan_cli.launcher_plan(sweep, jobs, to_time=2)
    assert slurm.slots == 256 and slurm.placement == Share(1, 8, 2)
    assert "without the queue's wait" in slurm.note
    # The cluster places a job's workers: more than this machine has is not refused here.
    sweep, jobs = plan_cli.compose_sweep([*TINY, "trainer.devices=4", "hydra/launcher=slurm"])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert plan_cli.plan_job(jobs[0], scheduled=True)[0].state == "new"
    local, _ = plan_cli.plan_job(jobs[0], scheduled=False)
    assert local.state == "refused" and "this machine has 2 cores" in local.reason


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, caplog):
    with pytest.raises(SystemExit) as unknown:
        plan_cli.main(["model=resnet99", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert unknown.value.code == 2
    assert len(caplog.messages) == 1 and "model/resnet99" in caplog.messages[0]
    with pytest.raises(SystemExit) as steps:
        plan_cli.main(["--steps", "0"])
    assert steps.value.code == 2 and "--steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as budget:
        plan_cli.main([*TINY, "trainer.max_iters=4", f"hydra.sweep.dir={tmp_path / 'sweep'}", "--steps", "1",
                       "--budget", "0.0001"])  # fmt: skip
    assert budget.value.code == 2 and "iterations a job fit a budget of" in caplog.messages[-1]


def test_a_run_of_several_local_workers_is_timed_as_that_many_ranks_at_once(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cpu = TrainerConfig(devices=4, device=DeviceKind.cpu)
    assert rank_share(Share(1, None, 0), cpu) == Share(4, 2, 0)  # spawn_workers: 8 cores // 4
    assert rank_share(Share(2, 4, 0), cpu) == Share(8, 2, 0)  # two such jobs side by side
    gpus = TrainerConfig(devices=2, device=DeviceKind.auto)
    assert rank_share(Share(1, None, 2), gpus) == Share(2, None, 2)  # rank i on GPU i
    assert rank_share(Share(2, 4, 0), TrainerConfig()) == Share(2, 4, 0)
