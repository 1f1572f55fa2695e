"""Shared fixtures: the CIFAR-10 JPEG tree from ../shared/data, extracted once per test session."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


# Groups that run only when `-m` names them (CI runs them in a step of their own, `pytest -m "slurm or
# nodes"`): the SLURM tests start daemons as root; the two-node tests take minutes of the suite's budget.
SEPARATE_GROUPS = ("slurm", "nodes")


def pytest_collection_modifyitems(config, items):
    named = [group for group in SEPARATE_GROUPS if group in (config.option.markexpr or "")]
    left_out = [g for g in SEPARATE_GROUPS if g not in named]
    chosen = [item for item in items if not any(item.get_closest_marker(g) for g in left_out)]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen


@pytest.fixture(scope="session")
def cifar10_jpeg(tmp_path_factory) -> Path:
    """The extracted CIFAR-10 JPEG tree (train/ and test/). Skips when the archive is absent, except under
    CI, where the real-data tests must run."""
    archive = Path(os.environ.get("RESNET_TRAIN_CIFAR_JPEG", SHARED_ARCHIVE))
    if not archive.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the CIFAR-10 JPEG archive at {archive}")
        pytest.skip(f"CIFAR-10 JPEG archive not found at {archive}")
    target = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "cifar10-jpeg"


@pytest.fixture
def small_filesystem(tmp_path):
    """mount(size) -> a fresh tmpfs of `size` ("96k"), unmounted after the test. Needs root (as in CI); the
    test is skipped where it cannot mount one."""
    import subprocess

    mounts = []

    def mount(size: str) -> Path:
        path = tmp_path / f"small{len(mounts)}"
        path.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        if subprocess.run(command, capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", str(path)], check=True)
