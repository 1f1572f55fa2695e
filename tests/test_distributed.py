"""DistributedDataParallel on CPU with gloo workers: equivalence to one process, one output, failures."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from clitools import TINY, compose_config, console_script

from resnet_train.engine.checkpoint import load_checkpoint
from resnet_train.engine.distributed import (
    LostContact,
    World,
    export_slurm_rendezvous,
    free_port,
    peers_answering,
    world_from_env,
)


def test_world_from_torchrun_and_slurm_variables(monkeypatch):
    assert world_from_env({}) is None
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == World(3, 8, 1)
    slurm = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "16",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "gpu[017-018]",
    }
    assert world_from_env(slurm) == World(5, 16, 1)
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # one task: a plain process
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    export_slurm_rendezvous()
    assert os.environ["MASTER_ADDR"] == "gpu017" and os.environ["MASTER_PORT"].isdigit()


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("node1", "node1"), ("gpu[003-005,9]", "gpu003"), ("a[7],b[1-2]", "a7"), ("cn-12,cn-13", "cn-12")],
)
def test_slurm_rendezvous_host_is_the_first_of_the_node_list(monkeypatch, nodelist, first):
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_NODELIST", nodelist)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    export_slurm_rendezvous()
    assert os.environ["MASTER_ADDR"] == first


DDP = [
    "trainer.precision=fp32",  # in every worker, whatever the machine (the test error is compared with fp32)
    "trainer.max_iters=6",
    "trainer.log_every=3",
    "trainer.eval_every=6",
    "trainer.checkpoint_every=6",
]


@pytest.mark.slow
def test_without_sync_bn_the_global_test_error_counts_every_sample_once(tmp_path, train_job):
    train_job(*DDP, "trainer.devices=2", "data.test_size=101", run_dir=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    wrong = metrics["test_error"] * 101
    assert abs(wrong - round(wrong)) < 1e-6  # a count over all 101 samples, not a per-rank average
    assert metrics["test_error"] == pytest.approx(single_process_test_error(tmp_path), abs=1e-9)


def single_process_test_error(run_dir):
    """Evaluate the DDP run's final weights in this process, on the same test set."""
    from resnet_train.config import Family
    from resnet_train.data import InputStats, Normalizer, load_splits
    from resnet_train.data.memory import MemoryEvalBatches
    from resnet_train.engine.evaluate import evaluate
    from resnet_train.models import build_model

    splits = load_splits("synthetic", "", num_classes=10, image_size=16, train_size=256, test_size=101)
    model = build_model(Family.cifar, 8, True, 10, shortcut="A", input_size=16)
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    normalize = Normalizer(InputStats.fit(splits.train.images))
    batches = MemoryEvalBatches(splits.test, normalize, 1000)
    return evaluate(model, batches, torch.device("cpu")).error


def worker_pids(parent: int) -> list[int]:
    """The spawned training workers of `parent` (not multiprocessing's resource tracker)."""
    pids = []
    for child in open(f"/proc/{parent}/task/{parent}/children").read().split():
        cmdline = open(f"/proc/{child}/cmdline", "rb").read()
        if b"spawn_main" in cmdline:
            pids.append(int(child))
    return pids


def test_a_peer_gone_in_a_collective_is_one_line_and_any_other_error_passes_unchanged(tmp_path):
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        gloo = "[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:41234"
        with pytest.raises(LostContact) as lost, peers_answering():
            raise RuntimeError(gloo)
        assert (
            str(lost.value)
            == "rank 0: lost contact with another rank (gloo: Connection closed by peer); stopping"
        )
        assert str(lost.value.at(12, None)).endswith("at iteration 12; no checkpoint yet; stopping")
        assert lost.value.exit_code != 0
        with (
            pytest.raises(RuntimeError, match="^mat1 and mat2 shapes cannot be multiplied$"),
            peers_answering(),
        ):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    finally:
        torch.distributed.destroy_process_group()
    with pytest.raises(RuntimeError, match="Connection closed by peer"), peers_answering():
        raise RuntimeError(gloo)  # no process group: not a peer of ours


@pytest.mark.slow
def test_a_dead_worker_ends_the_job_instead_of_hanging(tmp_path):
    process = subprocess.Popen(
        [console_script("resnet-train"), *TINY, "trainer.max_iters=100000", "trainer.devices=2",
         "trainer.log_every=2", f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = tmp_path / "train.log"
    deadline = time.monotonic() + 300
    # Well into training: both workers up and rank 0 past its first logging point.
    while len(worker_pids(process.pid)) < 2 or not log.exists() or "iteration 2/" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    os.kill(worker_pids(process.pid)[1], signal.SIGKILL)
    output, _ = process.communicate(timeout=300)  # a hang fails here
    assert process.returncode not in (0, None)
    assert "worker 1 failed" in output and "all workers stopped" in output


@pytest.mark.slow
def test_sigterm_to_the_launcher_reports_the_iteration_the_workers_stopped_at(tmp_path):
    process = subprocess.Popen(
        [console_script("resnet-train"), *TINY, "trainer.max_iters=100000", "trainer.devices=2",
         "trainer.log_every=2", "trainer.checkpoint_every=4", f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoints" / "last.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 75, output
    stopped_at = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["trainer"]["iteration"]
    launcher = [line for line in output.splitlines() if "re-run the same command to resume" in line]
    assert len(launcher) == 1 and f"stopped by SIGTERM at iteration {stopped_at};" in launcher[0], output


def test_slurm_launcher_config_maps_devices_onto_tasks_and_gpus():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = compose_config("hydra/launcher=slurm", "trainer.devices=4", hydra_config=True).hydra.launcher
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4
    assert "submitit" in launcher._target_ and launcher.signal_delay_s > 0


@pytest.mark.slow
def test_torchrun_workers_share_one_run_directory(tmp_path):
    torchrun = console_script("torchrun")
    result = subprocess.run(
        [torchrun, "--nproc-per-node=2", "--master-port", str(free_port()), console_script("resnet-train"),
         *TINY, *DDP, f"hydra.run.dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["iterations"] == 6
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
