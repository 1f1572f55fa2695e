"""Two "nodes" on one machine: two torchrun agents meeting at a c10d rendezvous on 127.0.0.1, gloo workers.

    torchrun --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:PORT resnet-train ...

started twice, as on two machines. Each test polls for files or log lines, with a deadline. They run only
when selected (`pytest -m nodes`; CI runs them in a step of their own).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from clitools import TINY, console_script

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.distributed import free_port

pytestmark = [pytest.mark.nodes, pytest.mark.slow]

DEADLINE_S = 180


def start_nodes(run_dir: Path, logs: Path, *overrides: str) -> list[subprocess.Popen]:
    """Both nodes' torchrun agents, each in a session of its own (agent and worker killed together)."""
    logs.mkdir(exist_ok=True)
    port = free_port()
    nodes = []
    for node in range(2):
        command = [
            console_script("torchrun"), "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes", "--max-restarts=0",
            console_script("resnet-train"), *TINY, *overrides, f"hydra.run.dir={run_dir}",
        ]  # fmt: skip
        with open(logs / f"node{node}.log", "w") as log:
            nodes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
    return nodes


def wait_until(condition, nodes: list[subprocess.Popen], logs: Path, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while not (value := condition()):
        if any(node.poll() is not None for node in nodes) or time.monotonic() > deadline:
            for node in nodes:
                if node.poll() is None:
                    os.killpg(node.pid, signal.SIGKILL)
            output = "\n".join(log.read_text() for log in sorted(logs.glob("node*.log")))
            pytest.fail(f"{what} never happened; the nodes' output:\n{output}")
        time.sleep(0.2)
    return value


def logged(run_dir: Path, pattern: str):
    log = run_dir / "train.log"
    return re.search(pattern, log.read_text()) if log.exists() else None


def ends(nodes: list[subprocess.Popen]) -> list[int]:
    """The nodes' exit codes, waiting for each at most DEADLINE_S (a hang fails the test)."""
    return [node.wait(timeout=DEADLINE_S) for node in nodes]


def worker_of(agent: subprocess.Popen) -> int:
    """The training worker torchrun's agent started."""
    children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
    (worker,) = [int(pid) for pid in children if b"resnet-train" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return worker


def test_two_nodes_train_and_resume_after_both_are_killed(tmp_path):
    run, logs = tmp_path / "run", tmp_path / "logs"
    steps = ["trainer.max_iters=24", "trainer.log_every=2", "trainer.checkpoint_every=6"]
    nodes = start_nodes(run, logs, *steps)
    wait_until(lambda: logged(run, r"checkpoint .* at iteration 6"), nodes, logs, "the first checkpoint")
    # As machines that go down: agent and worker (the agent starts its worker in a session of its own).
    for node in nodes:
        worker = worker_of(node)
        os.killpg(node.pid, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
    assert ends(nodes) == [-signal.SIGKILL] * 2
    stopped_at = load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["iteration"]
    assert stopped_at < 24
    nodes = start_nodes(run, logs, *steps)
    assert ends(nodes) == [0, 0], (logs / "node0.log").read_text()
    assert logged(run, rf"resumed from iteration {stopped_at}")
    assert logged(run, r"batch 32 on 2 process\(es\)")
    assert load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["iteration"] == 24


def test_when_one_nodes_worker_dies_the_other_node_ends_too(tmp_path):
    run, logs = tmp_path / "run", tmp_path / "logs"
    nodes = start_nodes(run, logs, "trainer.max_iters=100000", "trainer.log_every=2")
    wait_until(lambda: logged(run, r"iteration 4/"), nodes, logs, "training")
    os.kill(worker_of(nodes[1]), signal.SIGKILL)
    codes = ends(nodes)  # within the deadline, long before the process group's 300 s timeout
    assert all(code != 0 for code in codes), codes
    survivor = (logs / "node0.log").read_text()
    lost = re.findall(
        r"rank \d: lost contact with another rank \(gloo: Connection (?:closed|reset) by peer\) at iteration "
        r"(\d+); (?:no checkpoint yet|the last checkpoint is iteration \d+); stopping",
        survivor,
    )  # gloo says either
    assert len(lost) == 1 and int(lost[0]) >= 4, survivor
    # The tracebacks left are torchrun's agent's own (its worker failed, or the rendezvous store went with
    # the other node): every frame is torch's, none the worker's (ours, or Hydra's "Error executing job").
    frames = re.findall(r'^  File "([^"]+)"', survivor, re.MULTILINE)
    assert all("/torch/" in frame or frame.endswith("/torchrun") for frame in frames), survivor
    assert "Error executing job" not in survivor, survivor


def test_a_checkpoint_rank_0_cannot_write_stops_every_node(tmp_path, small_filesystem):
    disk = small_filesystem("200k")  # room for the run's logs, not for a checkpoint (~640 KB)
    logs = tmp_path / "logs"
    steps = ["trainer.max_iters=4", "trainer.checkpoint_every=2", "trainer.eval_every=4"]
    nodes = start_nodes(disk, logs, *steps)
    codes = ends(nodes)  # rank 1 does not wait at a barrier for a checkpoint that will never come
    assert all(code != 0 for code in codes), codes
    output = (logs / "node0.log").read_text() + (logs / "node1.log").read_text()
    assert "No space left on device" in output, output
    assert "rank 0 could not write the checkpoint at iteration 2" in output, output
