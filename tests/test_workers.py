"""The workers `trainer.devices=N` spawns share the machine's cores, as torchrun does, unless OMP_NUM_THREADS
chooses; the core count is given, so no assertion depends on the machine."""

import pytest

from resnet_train.engine.launch import worker_threads


@pytest.mark.parametrize(
    ("on_cpu", "cores", "omp", "threads"),
    [(True, 8, None, 4), (True, 1, None, 1), (True, 8, "3", None), (False, 8, None, None)],
)
def test_a_cpu_worker_takes_its_share_of_the_cores_unless_omp_num_threads_says(on_cpu, cores, omp, threads):
    assert worker_threads(on_cpu, cores, 2, omp) == threads
