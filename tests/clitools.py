"""Helpers for tests that run resnet-train: the tiny settings, the real config composed in-process, and the
console scripts for the tests where the process boundary is the point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from resnet_train.config import config_dir, register_configs

TINY = [
    "model=resnet20",
    "model.depth=8",
    "data=synthetic",
    "data.train_size=256",
    "data.test_size=128",
    "data.image_size=16",
    "trainer.batch_size=32",
    "trainer.device=cpu",
    "trainer.progress=false",
]
TINY_DATA = [o for o in TINY if not o.startswith("model")]  # the small data and trainer, for any net


def compose_config(*overrides: str, hydra_config: bool = False) -> DictConfig:
    """The real config (configs/config.yaml and its groups, checked against the schemas) with `overrides`,
    as `resnet-train OVERRIDES` composes it; `hydra_config` keeps the `hydra` node (launcher, sweep)."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="train"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def console_script(name: str) -> str:
    """The installed console script beside this interpreter (the project's venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: run `make install`")
    return str(path)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run `resnet-train ARGS`; returns the CompletedProcess (stdout and stderr merged into .stdout)."""
    return subprocess.run(
        [console_script("resnet-train"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def make_config(**groups):
    """A `Config` of the given group objects, the schema's default option for the others (what a plain
    `resnet-train` composes: CIFAR-10, SGD, the paper's CIFAR schedule)."""
    from resnet_train.config import ArchiveData, Config, ModelConfig, SGDConfig, TrainerConfig
    from resnet_train.engine.schedules import PaperCifarConfig

    defaults = {"model": ModelConfig, "data": ArchiveData, "optim": SGDConfig, "sched": PaperCifarConfig,
                "trainer": TrainerConfig}  # fmt: skip
    return Config(**{group: groups.get(group) or make() for group, make in defaults.items()})


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
