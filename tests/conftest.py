"""Shared fixtures: resnet-train run in this process (`train_job`), the CIFAR-10 JPEG tree from
../shared/data (extracted once per test session), and a small file system."""

from __future__ import annotations

import io
import itertools
import logging
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

# One intra-op thread per test process, and (through the environment) per console script and worker the tests
# start, unless OMP_NUM_THREADS says otherwise. The tests' nets are tiny, and two threads on two cores that
# other work also uses wait at every parallel region for a descheduled thread: on the 2-core development
# machine at load 6, a ResNet-8 step at batch 64 took 0.46-0.86 s with two threads, 0.055 s with one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from clitools import TINY, compose_config  # noqa: E402

from resnet_train.logs import DATE_FORMAT, FORMAT  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))  # also where torch was imported before this file


@pytest.fixture(autouse=True)
def host_without_cuda_or_native_bf16(request, monkeypatch):
    """The machine every test sees, whatever it runs on: no CUDA device and a CPU without native bf16. A test
    of another branch patches the detection itself (both ways); tests marked `gpu` see the real machine."""
    if request.node.get_closest_marker("gpu") is not None:
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr("resnet_train.engine.run.cpu_has_native_bf16", lambda: False)


@dataclass
class Job:
    """A finished in-process run: its directory, its metrics.json content (`RunSummary.metrics()` of what
    `run_job` returned) and what it logged (the lines the console shows)."""

    run_dir: Path
    metrics: dict | None
    log: str


@pytest.fixture
def train_job(tmp_path):
    """train_job(*overrides, run_dir=None, tiny=True, share=None) -> Job: `resnet-train OVERRIDES` without a
    new process. The real config is composed with Hydra's compose() from clitools.TINY (unless tiny=False)
    and `overrides`, then `resnet_train.cli.train.run_job` trains it in `run_dir` (by default a fresh folder
    under tmp_path). A bad setting raises UserError, as the console script would exit 2 with its message."""
    from resnet_train.cli.train import run_job

    numbers = itertools.count()
    threads = torch.get_num_threads()

    def train(*overrides: str, run_dir: Path | None = None, tiny: bool = True, share=None) -> Job:
        run_dir = Path(run_dir) if run_dir is not None else tmp_path / f"run{next(numbers)}"
        cfg = compose_config(*(TINY if tiny else []), *overrides)
        logger, captured = logging.getLogger("resnet_train"), io.StringIO()
        handler, level = logging.StreamHandler(captured), logger.level
        handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            summary = run_job(cfg, run_dir, share)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            torch.set_num_threads(threads)  # a job side by side sets its share
        return Job(run_dir, summary.metrics() if summary is not None else None, captured.getvalue())

    return train


SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


# The tiers (docs/testing.md), told from what a test and its fixtures call: a test that starts a process (the
# console script, torchrun, workers, pip, make) is of the process tier; one that trains or runs a tool in
# this process, the integration tier; the rest, unit tests of functions and small objects.
PROCESS_CALLS = ("run_cli(", "subprocess.", "console_script(", "Popen(", "devices=2", "devices: 2", "spawn(")
INTEGRATION_CALLS = ("train(", "train_job", "run_job(", "main(", "fit(", "build_data(", "build(")


def _source(item) -> str:
    """The test's own code, that of the fixtures it uses from this folder, and that of the functions of its
    module they call (two calls deep)."""
    import inspect

    functions = [item.function] + [
        definitions[-1].func for definitions in item._fixtureinfo.name2fixturedefs.values()
        if Path(inspect.getsourcefile(definitions[-1].func) or "").parent == Path(__file__).parent
    ]  # fmt: skip
    source = "".join(inspect.getsource(function) for function in functions)
    helpers = {
        name: function for name, function in vars(item.module).items()
        if inspect.isfunction(function) and function.__module__ == item.module.__name__
    }  # fmt: skip
    for _ in range(2):
        source += "".join(inspect.getsource(f) for name, f in helpers.items() if f"{name}(" in source)
    return source


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by them
def pytest_collection_modifyitems(config, items):
    for item in items:
        source = _source(item)
        if any(call in source for call in PROCESS_CALLS):
            item.add_marker(pytest.mark.process)
        elif any(call in source for call in INTEGRATION_CALLS):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
    _leave_out_separate_groups(config, items)


# Groups that run only when `-m` names them (CI runs them in a step of their own, `pytest -m "slurm or
# nodes"`): the SLURM tests start daemons as root; the two-node tests take minutes of the suite's budget.
SEPARATE_GROUPS = ("slurm", "nodes")


def _leave_out_separate_groups(config, items):
    named = [group for group in SEPARATE_GROUPS if group in (config.option.markexpr or "")]
    left_out = [g for g in SEPARATE_GROUPS if g not in named]
    chosen = [item for item in items if not any(item.get_closest_marker(g) for g in left_out)]
    if len(chosen) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    """A generated ImageFolder tree (imagetree.write_tree): train/ and val/, three classes of JPEGs of varied
    sizes. Shared by the session: a test that adds a file removes it again."""
    from imagetree import write_tree

    return write_tree(tmp_path_factory.mktemp("imagefolder"))


@pytest.fixture(scope="session")
def cifar10_jpeg(tmp_path_factory) -> Path:
    """A tenth of the CIFAR-10 JPEG tree: the first 500 training and 100 test images of every class (real
    images, decoded in seconds). Skips when the archive is absent, except under CI, where the real-data tests
    must run."""
    archive = Path(os.environ.get("RESNET_TRAIN_CIFAR_JPEG", SHARED_ARCHIVE))
    if not archive.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the CIFAR-10 JPEG archive at {archive}")
        pytest.skip(f"CIFAR-10 JPEG archive not found at {archive}")
    first = {"train": 500, "test": 100}

    def tenth(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        parts = Path(member.name).parts  # cifar10-jpeg/<split>/<class>/<number>.jpg
        keep = not member.isfile() or int(Path(member.name).stem) < first[parts[1]]
        return tarfile.data_filter(member, path) if keep else None

    target = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter=tenth)
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
