"""A sweep's jobs side by side on one machine (Hydra's joblib launcher): each on its share of the machine,
each with its own run directory, checkpoint and resume."""

import os

import pytest
from clitools import TINY, run_cli
from hydra.types import RunMode
from omegaconf import OmegaConf

from resnet_train.cli.train import JOBLIB_LAUNCHER, job_share


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


@pytest.mark.slow
def test_two_jobs_side_by_side_finish_in_their_own_directories_and_resume(tmp_path):
    sweep = ["-m", "hydra/launcher=side_by_side", "hydra.launcher.n_jobs=2", *TINY, "model=resnet20,plain20",
             "trainer.max_iters=4", "trainer.eval_every=4", "trainer.log_every=2",
             f"hydra.sweep.dir={tmp_path}"]  # fmt: skip
    result = run_cli(*sweep)
    assert result.returncode == 0, result.stdout
    runs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(runs) == 2 and all((run / "checkpoints" / "last.pt").is_file() for run in runs)
    threads = max(1, (os.cpu_count() or 1) // 2)
    share = f"one of 2 jobs side by side: {threads} thread(s)"
    assert all(share in (run / "train.log").read_text() for run in runs)
    again = run_cli(*sweep)
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("is already complete (4 iterations)") == 2, again.stdout
