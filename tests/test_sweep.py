"""The start and end of a sweep: an unknown config in a swept group is one line before any job, the outcome
files of killed sweeps do not pile up in the sweep directory, stopped jobs are told from failed ones, and
fail_fast stops a sweep at its first failed job with the summary of the jobs that ran."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from clitools import TINY, run_cli
from hydra import initialize_config_dir

from resnet_train.cli.sweep import remove_stale_outcomes, unknown_choices
from resnet_train.config import config_dir, register_configs


@pytest.fixture(scope="module")
def hydra_loader():
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield


def test_unknown_swept_choices_are_named(hydra_loader):
    overrides = ["model=resnet20,resnet99", "optim=sgd", "data=cifar10,cifar11", "model.depth=8,14"]
    unknown = unknown_choices(overrides)
    assert [entry.split(" (")[0] for entry in unknown] == ["model=resnet99", "data=cifar11"]
    assert "resnet56" in unknown[0] and "synthetic" in unknown[1]
    assert unknown_choices(["model=resnet20,plain20", "trainer.seed=0,1"]) == []


def test_a_sweep_with_an_unknown_model_runs_nothing_and_says_so_in_one_line(tmp_path):
    result = run_cli("-m", *TINY, "model=resnet20,resnet99", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 2, result.stdout
    assert result.stdout.count("\n") == 1 and "no job of the sweep ran" in result.stdout, result.stdout
    assert "model=resnet99" in result.stdout and not list(tmp_path.glob("resnet*"))


def test_outcome_files_of_dead_sweeps_on_this_host_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead, host = int(ended.stdout), socket.gethostname()
    files = {
        "dead": tmp_path / f".outcomes-{host}-{dead}.jsonl",
        "dead_unnamed_host": tmp_path / f".outcomes-{dead}.jsonl",  # as sweeps named them before
        "alive": tmp_path / f".outcomes-{host}-{os.getpid()}.jsonl",
        "other_host": tmp_path / f".outcomes-elsewhere-{dead}.jsonl",
    }
    for path in files.values():
        path.write_text("")
    remove_stale_outcomes(tmp_path, host)
    assert {name for name, path in files.items() if path.exists()} == {"alive", "other_host"}


FAIL_FAST = "hydra.callbacks.sweep_summary.fail_fast=true"


@pytest.mark.slow
def test_fail_fast_ends_the_sweep_at_the_first_failure_with_the_summary(tmp_path):
    result = run_cli("-m", *TINY, "model.depth=21,8", "trainer.max_iters=2", "trainer.eval_every=2",
                     FAIL_FAST, f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 1, result.stdout
    summary = [line for line in result.stdout.splitlines() if "jobs finished" in line]
    assert len(summary) == 1 and "0 of 1 jobs finished; failed: " in summary[0], result.stdout
    assert "CIFAR nets have 6n+2 layers" in summary[0] and "did not run" in summary[0]
    assert "Traceback" not in result.stdout
    assert not list(tmp_path.glob("*/metrics.json"))  # model.depth=8 was never started
    assert not list(tmp_path.glob(".outcomes-*"))


def test_fail_fast_is_refused_where_jobs_start_together(tmp_path):
    result = run_cli("-m", *TINY, "model.depth=21,8", "hydra/launcher=side_by_side", FAIL_FAST,
                     f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 2, result.stdout
    errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "fail_fast=true needs jobs run one after another" in errors[0], result.stdout
    assert "JoblibLauncher" in errors[0]
    assert not any(tmp_path.glob("*/.hydra"))


def summary_of(tmp_path, outcomes, fail_fast=False):
    """Run SweepSummary over fake job outcomes (overrides, return value) as Hydra's basic launcher would."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from resnet_train.cli.sweep import BASIC_LAUNCHER, SweepSummary

    hydra = {
        "sweep": {"dir": str(tmp_path)},
        "launcher": {"_target_": BASIC_LAUNCHER},
        "overrides": {"task": []},
    }
    config = OmegaConf.create({"hydra": hydra})
    summary = SweepSummary(fail_fast=fail_fast)
    summary.on_multirun_start(config)
    for overrides, value in outcomes:
        job = JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)
        summary.on_job_end(config, job)
    summary.on_multirun_end(config)


def test_a_sweep_ends_with_its_summary_even_when_no_job_reported(tmp_path, caplog):
    with pytest.raises(SystemExit) as end:
        summary_of(tmp_path, [])
    assert end.value.code == 1 and "no job of the sweep reported how it ended" in caplog.text


def test_a_slurm_sweep_never_takes_an_earlier_sweeps_results_for_its_own(tmp_path):
    from omegaconf import OmegaConf

    from resnet_train.cli.sweep import SweepSummary

    # A restarted cluster numbers its jobs from 1 again: 1_0's result is the earlier sweep's.
    stale = tmp_path / ".submitit" / "1_0" / "1_0_result.pkl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"earlier")
    (stale.parent / "1_0_0_log.out").write_text("kept")
    target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    hydra = {"sweep": {"dir": str(tmp_path)}, "launcher": {"_target_": target}, "overrides": {"task": []}}
    SweepSummary().on_multirun_start(OmegaConf.create({"hydra": hydra}))
    assert not stale.exists() and (stale.parent / "1_0_0_log.out").exists()


def test_the_summary_tells_stopped_jobs_from_failed_ones(tmp_path, caplog, hydra_loader):
    stopped = {"error": "stopped by SIGTERM at iteration 6; checkpoint written", "exit_code": 75}
    with pytest.raises(SystemExit) as end:
        summary_of(tmp_path, [(["a=1"], None), (["a=2"], stopped)])
    assert end.value.code == 75
    assert (
        "1 of 2 jobs finished; stopped (exit code 75; re-run the sweep to resume): a=2: stopped by"
        in caplog.text
    )
    with pytest.raises(SystemExit) as end:
        summary_of(tmp_path, [(["a=1"], {"error": "bad input"}), (["a=2"], stopped)])
    assert end.value.code == 1  # a failure outweighs a stop
    assert "0 of 2 jobs finished; stopped (exit code 75; re-run the sweep to resume): a=2: " in caplog.text
    assert "; failed: a=1: bad input" in caplog.text
