"""The end of a sweep: fail_fast stops it at the first failed job, with the summary of the jobs that ran."""

import pytest
from clitools import TINY, run_cli

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

    config = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(tmp_path)}, "launcher": {"_target_": BASIC_LAUNCHER}}}
    )
    summary = SweepSummary(fail_fast=fail_fast)
    summary.on_multirun_start(config)
    for overrides, value in outcomes:
        job = JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=value)
        summary.on_job_end(config, job)
    summary.on_multirun_end(config)


def test_the_summary_tells_stopped_jobs_from_failed_ones(tmp_path, caplog):
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
