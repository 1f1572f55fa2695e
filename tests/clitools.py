"""Helpers for tests that run the console scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
