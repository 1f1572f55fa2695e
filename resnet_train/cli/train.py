"""`resnet-train`: compose the config with Hydra, validate it, and start one or more training workers.

This is the only place that reads a Hydra config: it becomes plain dataclasses (`resnet_train.config.Config`)
before anything else sees it. Workers come from one of three places:
- one process (the default);
- `trainer.devices=N`: N workers spawned here, sharing this run's directory (see engine/distributed.py);
- torchrun or SLURM: every process runs this CLI; ranks come from the environment.
A sweep may also run several one-process jobs side by side (`hydra/launcher=joblib hydra.launcher.n_jobs=N`):
each takes its share of the cores, or one GPU by its job number (`job_share`).
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import signal
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm.contrib.logging import logging_redirect_tqdm

from ..applicability import check_settings
from ..config import Config, DeviceKind, check_ranges, config_dir, register_configs
from ..engine import distributed
from ..engine.loop import PREEMPTED_EXIT_CODE, PREEMPTION_SIGNALS, Preempted, StopOutsideLoop
from ..engine.rundir import RunLock
from ..errors import UserError
from ..logs import release_held_logs, setup_logging
from .hydra_record import HydraRecord
from .launch_checks import check_resume, check_worker_count
from .overrides import refuse_unreadable_overrides

log = logging.getLogger("resnet_train")


class WorkerFailed(UserError):
    exit_code = 1


JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@dataclass(frozen=True)
class JobShare:
    """What one job of a sweep running `jobs` jobs side by side may use: `threads` intra-op threads (its
    share of the cores) and, on a machine with GPUs, GPU `gpu` (job number modulo the GPU count)."""

    jobs: int
    threads: int
    gpu: int


def job_share(hydra_config: DictConfig) -> JobShare | None:
    """This job's share of the machine, when Hydra's joblib launcher runs the sweep's jobs side by side."""
    launcher = hydra_config.launcher
    if hydra_config.mode is not RunMode.MULTIRUN or launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    from joblib import effective_n_jobs

    jobs = effective_n_jobs(launcher.n_jobs)  # joblib's reading: -1 is one job per core
    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return JobShare(jobs, threads, hydra_config.job.num % gpus if gpus else 0)


def accept_run(record: HydraRecord | None, run_dir: Path) -> None:
    """The run in `run_dir` is this command's (it holds the lock, the config was accepted): record its config
    in `.hydra/` and let train.log receive the lines held back until now (logs.HeldFileHandler)."""
    if record is not None:
        record.write(run_dir)
    release_held_logs()


def run_worker(
    config: Config,
    run_dir: Path,
    world: distributed.World,
    join_group: bool,
    record: HydraRecord | None = None,
) -> dict:
    """Train on one rank; `join_group` starts the process group (DDP), even for a world of one. The main rank
    writes `record` and the log into the run directory once the run is this command's (`accept_run`)."""
    try:
        # From here a signal stops the run at once (exit 75), until the loop installs its own handling.
        with StopOutsideLoop():
            from ..engine.run import resolve_device, train

            if join_group:
                distributed.init_process_group(world, resolve_device(config.trainer.device, world.local_rank))
            if not world.is_main:
                logging.getLogger().setLevel(logging.WARNING)
            with logging_redirect_tqdm():
                return train(config, run_dir, world, functools.partial(accept_run, record, run_dir))
    finally:
        distributed.destroy()


def _spawned_worker(
    local_rank: int, config: Config, run_dir: str, port: int, world_size: int, stopped_at, record
) -> None:
    """Entry point of a worker started by `spawn_workers` (a fresh interpreter without Hydra's logging).
    `stopped_at` (a shared integer) receives the iteration a pre-empted worker stopped at."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    on_cpu = config.trainer.device is DeviceKind.cpu or not torch.cuda.is_available()
    if on_cpu and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))  # share the cores (as torchrun)
    os.environ.update(RANK=str(local_rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(local_rank))
    setup_logging(file=Path(run_dir) / "train.log" if local_rank == 0 else None, stream=sys.stdout)
    try:
        world = distributed.World(local_rank, world_size, local_rank)
        run_worker(config, Path(run_dir), world, True, record)
    except Preempted as stop:
        log.warning("%s", stop)
        if stop.iteration is not None:
            stopped_at.value = stop.iteration
        sys.exit(PREEMPTED_EXIT_CODE)
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)


def spawn_workers(config: Config, run_dir: Path, count: int, record: HydraRecord | None = None) -> None:
    """Start `count` local workers and wait for them. Pre-emption signals are passed on to every worker, and
    the launcher reports the iteration they stopped at; if one worker dies, the others are terminated and
    this raises (no hang)."""
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
    on_gpu = config.trainer.device is not DeviceKind.cpu and torch.cuda.is_available()
    log.info("starting %d workers (%s), each loading the data", count, "NCCL" if on_gpu else "gloo, CPU")
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
    config: Config, run_dir: Path, share: JobShare | None = None, record: HydraRecord | None = None
) -> dict | None:
    """Train `config` in `run_dir` on the workers it asks for; returns the final metrics of a run in this
    process (None where spawned workers trained)."""
    world = distributed.world_from_env()
    check_resume(config.trainer.resume)
    if world is None:  # workers started here (under torchrun or SLURM, the launcher placed them)
        check_worker_count(config, os.cpu_count() or 1, torch.cuda.device_count())
    processes = world.world_size if world is not None else config.trainer.devices
    if config.trainer.batch_size % processes:
        raise UserError(
            f"trainer.batch_size={config.trainer.batch_size} (the global batch) does not divide among "
            f"{processes} processes"
        )
    # One lock per run, held by this command (or rank 0 under torchrun/SLURM), never by spawned workers.
    with RunLock(run_dir) if world is None or world.is_main else nullcontext():
        if world is not None:
            distributed.export_slurm_rendezvous()
            return run_worker(config, run_dir, world, join_group=True, record=record)
        elif config.trainer.devices > 1:
            spawn_workers(config, run_dir, config.trainer.devices, record)
        elif share is not None:  # one of several jobs side by side: a world of one on its share
            torch.set_num_threads(share.threads)
            on_gpu = config.trainer.device is not DeviceKind.cpu and torch.cuda.is_available()
            log.info("one of %d jobs side by side: %d thread(s)%s", share.jobs, share.threads,
                     f", GPU {share.gpu}" if on_gpu else "")  # fmt: skip
            return run_worker(config, run_dir, distributed.World(local_rank=share.gpu), False, record)
        else:
            return run_worker(config, run_dir, distributed.World(), join_group=False, record=record)
    return None


class OutputDirCheck(Callback):
    """Refuse an output directory that cannot be created or written, in one line, before Hydra tries."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)
        self._check(config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        HydraConfig.instance().set_config(config)
        self._check(config.hydra.sweep.dir)

    @staticmethod
    def _check(directory: str) -> None:
        path = Path(directory).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            what = "is not a directory" if not existing.is_dir() else "is not writable"
            log.error("cannot write the run directory %s: %s %s", path, existing, what)
            sys.exit(UserError.exit_code)


def warn_unswept(cfg: DictConfig, hydra_config: DictConfig) -> None:
    """An experiment preset defines a sweep (`hydra.sweeper.params`) that only `-m` runs; without it, one
    job trains. That can be intended (one net with a preset's settings), so this warns in one line, naming
    the job it trains and the command that runs the whole sweep, and goes on."""
    params = hydra_config.sweeper.get("params")
    if not params:
        return
    choices = hydra_config.runtime.choices
    job = " ".join(f"{key}={choices.get(key, OmegaConf.select(cfg, key))}" for key in params)
    # The command line's own value of a swept key would narrow the sweep to that value: leave it out.
    kept = [o for o in hydra_config.overrides.task if o.split("=")[0].lstrip("+~") not in params]
    command = shlex.join(["resnet-train", "-m", *kept])
    log.warning(
        "the config defines a sweep (%s) that runs only with -m; training one job, %s. The whole sweep: %s",
        " ".join(f"{key}={value}" for key, value in params.items()), job, command,
    )  # fmt: skip


def run_job(
    cfg: DictConfig, run_dir: Path, share: JobShare | None = None, record: HydraRecord | None = None
) -> dict | None:
    """One job of `resnet-train` from its composed config (without the `hydra` node): check it, then train
    in `run_dir`. Returns the final metrics (None where spawned workers trained); raises UserError for a
    bad setting and Preempted for a signal, leaving exit codes to the caller."""
    config: Config = OmegaConf.to_object(cfg)
    config.data.root = os.path.expanduser(config.data.root)  # a quoted '~/data' (cli/overrides.py)
    check_ranges(config)
    check_settings(cfg)  # a key the schema lacks, or a setting with no effect on this run: refused
    return launch(config, run_dir, share, record)


def scheduled_job(hydra_config: DictConfig) -> bool:
    """A sweep job that a scheduler runs as a job of its own (hydra-submitit-launcher): a signal that stops it
    (scancel, pre-emption without requeue) stops this job only. Under the basic and joblib launchers the jobs
    run in the sweep's own processes, and a signal stops the whole sweep."""
    target = hydra_config.launcher.get("_target_") or ""
    return hydra_config.mode is RunMode.MULTIRUN and "submitit" in target


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def hydra_main(cfg: DictConfig) -> dict | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode is RunMode.MULTIRUN
    if not multirun:
        warn_unswept(cfg, HydraConfig.get())
    try:
        record = HydraRecord.of_job(cfg, HydraConfig.instance().cfg)
        run_job(cfg, run_dir, job_share(HydraConfig.get()), record)
    except Preempted as stop:
        log.warning("%s; re-run the same command to resume (exit code %d)", stop, PREEMPTED_EXIT_CODE)
        handler = signal.getsignal(stop.signum)
        if callable(handler) and handler is not signal.default_int_handler:
            # A launcher's own handler (submitit's requeue on USR2) runs now that the checkpoint is safe.
            signal.raise_signal(stop.signum)
        # Only this job stopped (scancel): the sweep records it and goes on. On USR2 submitit has requeued
        # the job (rank 0 asks SLURM) and the job's next run reports instead.
        if scheduled_job(HydraConfig.get()) and stop.signum != signal.SIGUSR2:
            return {"error": str(stop), "exit_code": PREEMPTED_EXIT_CODE}
        sys.exit(PREEMPTED_EXIT_CODE)
    except UserError as error:
        log.error("%s", error)
        if multirun:
            return {"error": str(error)}  # the sweep goes on; cli/sweep.py reports it at the end
        sys.exit(error.exit_code)
    return None


def main() -> None:
    refuse_unreadable_overrides(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
