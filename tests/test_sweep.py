"""The start and end of a sweep: an unknown config in a swept group is one line before any job, and the
outcome files of killed sweeps do not pile up in the sweep directory."""

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
