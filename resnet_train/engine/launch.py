"""Starting the workers of one run: in this process, as spawned local workers (`trainer.devices=N`), or as
one rank that torchrun or SLURM placed; what only the machine can refuse is checked first."""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.contrib.logging import logging_redirect_tqdm

from ..checks import on_cuda
from ..config import Config, DeviceKind
from ..errors import UserError
from ..logs import release_held_logs, setup_logging
from . import distributed
from .rundir import RunLock
from .signals import PREEMPTED_EXIT_CODE, PREEMPTION_SIGNALS, Preempted, StopOutsideLoop

if TYPE_CHECKING:
    from ..cli.hydra_record import HydraRecord
    from .summary import RunSummary

log = logging.getLogger("resnet_train")


class WorkerFailed(UserError):
    exit_code = 1


@dataclass(frozen=True)
class Share:
    """A job's share of the machine where `jobs` run side by side (joblib, or resnet-plan's timed copies):
    `threads` (None: every core) and GPU `gpu`, the job's number modulo the `gpus` there are."""

    jobs: int = 1
    threads: int | None = None
    gpus: int = 0
    job: int = 0

    @property
    def gpu(self) -> int:
        return self.job % self.gpus if self.gpus else 0


def accept_run(record: HydraRecord | None, run_dir: Path) -> None:
    """The run is this command's: record its config in `.hydra/` and release train.log's held lines."""
    if record is not None:
        record.write(run_dir)
    release_held_logs()


def run_worker(
    config: Config, run_dir: Path, world: distributed.World, join_group: bool,
    record: HydraRecord | None = None, threads: int | None = None,
) -> RunSummary | None:  # fmt: skip
    """Train on one rank with `threads` (None: torch's choice); `join_group` starts the process group."""
    try:
        # From here a signal stops the run at once (exit 75), until the loop installs its own handling.
        with StopOutsideLoop():
            from .run import Runtime, train

            rt = Runtime.resolve(config.trainer, world, threads)  # where this process runs, once
            if join_group:
                distributed.init_process_group(world, rt.device)
            if not world.is_main:
                logging.getLogger().setLevel(logging.WARNING)
            with logging_redirect_tqdm():
                return train(config, run_dir, rt, functools.partial(accept_run, record, run_dir))
    finally:
        distributed.destroy()


def worker_threads(on_cpu: bool, cores: int, world_size: int, omp_num_threads: str | None) -> int | None:
    """A local CPU worker's share of the cores, unless OMP_NUM_THREADS says; None on GPUs."""
    if not on_cpu or omp_num_threads is not None:
        return None
    return max(1, cores // world_size)


def _spawned_worker(
    local_rank: int, config: Config, run_dir: str, port: int, world_size: int, stopped_at, record
) -> None:
    """A worker of `spawn_workers`; `stopped_at` (shared) gets the iteration a pre-empted one stopped at."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    on_cpu = not on_cuda(config.trainer.device)
    threads = worker_threads(on_cpu, os.cpu_count() or 1, world_size, os.environ.get("OMP_NUM_THREADS"))
    os.environ.update(RANK=str(local_rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(local_rank))
    setup_logging(file=Path(run_dir) / "train.log" if local_rank == 0 else None, stream=sys.stdout)
    try:
        world = distributed.World(local_rank, world_size, local_rank)
        run_worker(config, Path(run_dir), world, True, record, threads)
    except Preempted as stop:
        log.warning("%s", stop)
        if stop.iteration is not None:
            stopped_at.value = stop.iteration
        sys.exit(PREEMPTED_EXIT_CODE)
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)


def spawn_workers(config: Config, run_dir: Path, count: int, record: HydraRecord | None = None) -> None:
    """Start `count` local workers and wait for them, passing pre-emption signals on; if one dies, the others
    are terminated and this raises (no hang)."""
    import torch.multiprocessing as mp

    received: list[int] = []
    processes = []

    def forward(signum, frame):
        received.append(signum)
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in PREEMPTION_SIGNALS}
    stopped_at = mp.get_context("spawn").Value("q", -1)
    nccl = on_cuda(config.trainer.device)
    log.info("starting %d workers (%s), each loading the data", count, "NCCL" if nccl else "gloo, CPU")
    try:
        context = mp.start_processes(
            _spawned_worker, args=(config, str(run_dir), distributed.free_port(), count, stopped_at, record),
            nprocs=count, join=False, start_method="spawn",
        )  # fmt: skip
        processes.extend(context.processes)
        if received:  # a signal came while the workers were starting
            forward(received[0], None)
        while not context.join():
            pass
    except mp.ProcessExitedException as error:
        if received or error.exit_code == PREEMPTED_EXIT_CODE:
            # A worker killed by the forwarded signal before it could catch it has nothing to save either.
            iteration = stopped_at.value if stopped_at.value >= 0 else None
            raise Preempted(received[0] if received else signal.SIGTERM, iteration) from None
        failure = WorkerFailed(f"worker {error.error_index} failed ({error}); all workers stopped")
        failure.exit_code = error.exit_code if error.exit_code and error.exit_code > 0 else 1
        raise failure from None
    except mp.ProcessRaisedException as error:
        raise WorkerFailed(f"worker {error.error_index} crashed:\n{error}") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def launch(
    config: Config, run_dir: Path, share: Share | None = None, record: HydraRecord | None = None
) -> RunSummary | None:
    """Train `config` in `run_dir` on its workers; the summary of a run in this process, else None."""
    world = distributed.world_from_env()
    check_launch(config, world)
    # One lock per run, held by this command (or rank 0 under torchrun/SLURM), never by spawned workers.
    with RunLock(run_dir) if world is None or world.is_main else nullcontext():
        if world is not None:
            distributed.export_slurm_rendezvous()
            return run_worker(config, run_dir, world, join_group=True, record=record)
        elif config.trainer.devices > 1:
            spawn_workers(config, run_dir, config.trainer.devices, record)
        elif share is not None:  # one of several jobs side by side: a world of one on its share
            # Lines, not progress bars: two bars side by side overwrite one terminal line.
            config = replace(config, trainer=replace(config.trainer, progress=False))
            log.info("one of %d jobs side by side: %d thread(s)%s", share.jobs, share.threads,
                     f", GPU {share.gpu}" if on_cuda(config.trainer.device) else "")  # fmt: skip
            world = distributed.World(local_rank=share.gpu)
            return run_worker(config, run_dir, world, False, record, share.threads)
        else:
            return run_worker(config, run_dir, distributed.World(), join_group=False, record=record)
    return None


def check_launch(config: Config, world: distributed.World | None) -> None:
    """What only the machine can refuse: an empty `trainer.resume`, more local workers (`world` None) than
    cores or GPUs, a global batch that does not divide among the processes."""
    check_resume(config.trainer.resume)
    if world is None:
        check_worker_count(config, os.cpu_count() or 1, torch.cuda.device_count())
    processes = world.world_size if world is not None else config.trainer.devices
    if config.trainer.batch_size % processes:
        raise UserError(
            f"trainer.batch_size={config.trainer.batch_size} (the global batch) does not divide among "
            f"{processes} processes"
        )


def check_worker_count(config: Config, cores: int, gpus: int) -> None:
    """At most one local worker per core on a CPU (more only multiply the memory), per GPU on GPUs."""
    devices, kind = config.trainer.devices, config.trainer.device
    if devices <= 1:
        return
    on_cpu = kind is DeviceKind.cpu or (kind is DeviceKind.auto and gpus == 0)
    if on_cpu and devices > cores:
        raise UserError(
            f"trainer.devices={devices} CPU workers, but this machine has {cores} cores; use "
            f"trainer.devices={cores} or fewer"
        )
    if not on_cpu and devices > gpus:
        raise UserError(f"trainer.devices={devices}, but {gpus} GPUs are visible; use trainer.devices={gpus}")


def check_resume(resume: str) -> None:
    if not resume.strip():
        raise UserError(
            "trainer.resume is empty: give auto (the default), never, or a checkpoint file "
            "(trainer.resume=RUN/checkpoints/last.pt)"
        )
