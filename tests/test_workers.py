"""The workers `trainer.devices=N` spawns share the machine's cores, as torchrun does, unless OMP_NUM_THREADS
chooses; the core count is forced here both ways, so no assertion depends on the machine."""

import os

import pytest
import torch

from resnet_train.config import Config, DeviceKind, TrainerConfig
from resnet_train.engine import launch as launcher


@pytest.mark.parametrize(
    ("cores", "omp", "cuda", "threads"),
    [(8, None, False, 4), (1, None, False, 1), (8, "3", False, 3), (8, None, True, 5)],
)
def test_a_spawned_worker_takes_its_share_of_the_cores(monkeypatch, tmp_path, cores, omp, cuda, threads):
    """On a CPU run: the cores over the workers, at least one; OMP_NUM_THREADS wins. On a GPU: left alone."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    before = torch.get_num_threads()
    torch.set_num_threads(int(omp or 5))  # what the fresh interpreter starts with (5: torch's own choice)
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):  # restored afterwards
        monkeypatch.setenv(name, "")
    ran = []
    monkeypatch.setattr(launcher, "run_worker", lambda *args: ran.append((args[2], torch.get_num_threads())))
    try:
        config = Config(trainer=TrainerConfig(device=DeviceKind.auto))
        launcher._spawned_worker(1, config, str(tmp_path), 12345, 2, None, None)
    finally:
        torch.set_num_threads(before)
    assert [(world.rank, world.world_size, n) for world, n in ran] == [(1, 2, threads)]
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["MASTER_PORT"]) == ("1", "2", "12345")
