"""`<run>/.hydra/` records the config of the command that trains in the run directory: a refused command (a
config change, another command holding the directory) leaves it and train.log as they were, and a re-run of
a finished run adds no TensorBoard events. Through the console script: Hydra itself would write `.hydra/`
and open the log before the job starts."""

from __future__ import annotations

import pytest
from clitools import TINY, run_cli
from omegaconf import OmegaConf

from resnet_train.engine.rundir import RunLock

pytestmark = pytest.mark.slow

RUN = [*TINY, "trainer.max_iters=2", "trainer.eval_every=2"]


def record(run_dir) -> dict[str, bytes]:
    """The .hydra/ files and the log."""
    files = sorted((run_dir / ".hydra").iterdir()) + [run_dir / "train.log"]
    return {p.name: p.read_bytes() for p in files}


@pytest.fixture
def finished(tmp_path):
    result = run_cli(*RUN, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stdout
    return tmp_path


def test_a_refused_or_locked_out_command_leaves_the_record_and_a_rerun_adds_no_events(finished):
    before = record(finished)
    assert sorted(before) == ["config.yaml", "hydra.yaml", "overrides.yaml", "train.log"]  # as Hydra writes
    assert OmegaConf.load(finished / ".hydra" / "config.yaml").model.depth == 8
    assert "model.depth=8" in OmegaConf.load(finished / ".hydra" / "overrides.yaml")
    assert OmegaConf.load(finished / ".hydra" / "hydra.yaml").hydra.run.dir == str(finished)
    events = sorted(finished.glob("events.out.tfevents.*"))
    changed = run_cli(*RUN, "optim.lr=0.05", "model=plain20", f"hydra.run.dir={finished}")
    assert changed.returncode == 2 and "optim.lr: 0.1 -> 0.05" in changed.stdout, changed.stdout
    assert record(finished) == before
    with RunLock(finished):  # as a command running in the directory holds it
        locked_out = run_cli(*RUN, "trainer.log_every=1", f"hydra.run.dir={finished}")
    assert locked_out.returncode == 2 and "is in use" in locked_out.stdout, locked_out.stdout
    assert record(finished) == before
    again = run_cli(*RUN, f"hydra.run.dir={finished}")
    assert again.returncode == 0 and "already complete" in again.stdout, again.stdout
    assert sorted(finished.glob("events.out.tfevents.*")) == events


def test_a_record_that_cannot_be_written_is_one_line(finished):
    (finished / ".hydra" / "config.yaml").unlink()
    (finished / ".hydra" / "config.yaml").mkdir()
    result = run_cli(*RUN, f"hydra.run.dir={finished}")
    assert result.returncode == 2 and "Traceback" not in result.stdout, result.stdout
    errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and ".hydra/config.yaml" in errors[0], result.stdout
