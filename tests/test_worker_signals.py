"""A pre-emption signal sent to the whole process group (`kill -TERM -- -PGID`: what `timeout`, systemd and
SLURM's time limit do) reaches the streamed loader's DataLoader workers too: they ignore it, the main process
finishes its step, writes a checkpoint and stops them, and the run ends with exit code 75."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from clitools import console_script
from PIL import Image

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.signals import PREEMPTED_EXIT_CODE


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/<class>/ 8 JPEGs, val/<class>/ 2, of two classes, 24x24."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 2)):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(100 * c + rng.normal(80, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["TERM", "USR2"])
def test_a_signal_to_the_process_group_ends_in_a_checkpoint_and_75(tree, tmp_path, signum):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [console_script("resnet-train"), "model=resnet20", "model.depth=8", "data=imagefolder",
         f"data.root={tree}", "data.num_classes=2", "data.image_size=16", "data.scale_range=[18,24]",
         "data.test_resize=18", "data.mean_samples=8", "data.workers=2", "trainer.batch_size=4",
         "trainer.max_iters=1000", "sched.milestones=[500]", "trainer.checkpoint_every=2",
         "trainer.log_every=2", "trainer.eval_every=1000", "trainer.device=cpu", "trainer.progress=false",
         f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        sidecar = run_dir / "checkpoints" / "last.pt.sha256"
        while not sidecar.exists():  # the workers are running once a checkpoint is written
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.05)
        os.killpg(process.pid, signum)
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == PREEMPTED_EXIT_CODE, output
    name = signal.Signals(signum).name
    assert f"stopped by {name} at iteration" in output and "Traceback" not in output, output
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["trainer"]["iteration"] >= 2
    log = (run_dir / "train.log").read_text()
    assert log.count(f"received {name}") == 1, log  # the main process's line, not one per worker
