"""`resnet-train`: compose the config with Hydra, validate it, and start one or more training workers.

The only reader of a Hydra config: it becomes plain dataclasses (`resnet_train.config.Config`) before anything
else sees it; engine/launch.py starts the workers. Jobs of a sweep side by side (`hydra/launcher=joblib
hydra.launcher.n_jobs=N`) each take a share of the cores, or one GPU by job number (`job_share`).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..checks import check_settings, composing_error
from ..config import Config, check_ranges, config_dir, model_name, register_configs
from ..engine.launch import Share, launch
from ..engine.signals import PREEMPTED_EXIT_CODE, Preempted
from ..engine.summary import RunSummary
from ..errors import UserError
from ..logs import name_job_lines, setup_logging
from .hydra_record import HydraRecord
from .sweep import JOBLIB_LAUNCHER, sweep_stopped

log = logging.getLogger("resnet_train")


def job_share(hydra_config: DictConfig) -> Share | None:
    """This job's share of the machine, when Hydra's joblib launcher runs the sweep's jobs side by side."""
    launcher = hydra_config.launcher
    if hydra_config.mode is not RunMode.MULTIRUN or launcher.get("_target_") != JOBLIB_LAUNCHER:
        return None
    from joblib import effective_n_jobs

    jobs = effective_n_jobs(launcher.n_jobs)  # joblib's reading: -1 is one job per core
    return Share(jobs, max(1, (os.cpu_count() or 1) // jobs), torch.cuda.device_count(), hydra_config.job.num)


class OutputDirCheck(Callback):
    """Refuse an output directory that cannot be created or written, in one line, before Hydra tries."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config, "run")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config, "sweep")

    @staticmethod
    def _check(config: DictConfig, mode: str) -> None:
        HydraConfig.instance().set_config(config)
        path = Path(config.hydra[mode].dir).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            what = "is not a directory" if not existing.is_dir() else "is not writable"
            log.error("cannot write the run directory %s: %s %s", path, existing, what)
            sys.exit(UserError.exit_code)


def warn_unswept(cfg: DictConfig, hydra_config: DictConfig) -> None:
    """A preset's sweep (`hydra.sweeper.params`) runs only with `-m`; one job may be intended, so this warns
    in one line, naming the job it trains and the command of the whole sweep, and goes on."""
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


def job_label(cfg: DictConfig, overrides: list[str]) -> str:
    """A sweep job's name in its log lines: "plain56", or "resnet20 seed 1" where the sweep sets seeds."""
    label = model_name(cfg.model.residual, cfg.model.depth)
    seeded = any(override.lstrip("+").startswith("trainer.seed=") for override in overrides)
    return f"{label} seed {cfg.trainer.seed}" if seeded else label


def run_job(cfg: DictConfig, run_dir: Path, share: Share | None = None,
            record: HydraRecord | None = None) -> RunSummary | None:  # fmt: skip
    """One job from its composed config (without the `hydra` node): check it, then train in `run_dir`.
    Returns the run's summary (None where spawned workers trained, or the run was already complete); raises
    UserError for a bad setting and Preempted for a signal, leaving exit codes to the caller."""
    return launch(job_config(cfg), run_dir, share, record)


def job_config(cfg: DictConfig) -> Config:
    """A job's composed config (without the `hydra` node) as plain dataclasses, checked: UserError for a
    value out of range, a key the schema lacks, or a setting with no effect on this run."""
    config: Config = OmegaConf.to_object(cfg)
    check_ranges(config)
    check_settings(config)
    return config


register_configs()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def hydra_main(cfg: DictConfig) -> dict | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode is RunMode.MULTIRUN
    if not multirun:
        warn_unswept(cfg, HydraConfig.get())
    else:
        name_job_lines(job_label(cfg, HydraConfig.get().overrides.task))
    share = job_share(HydraConfig.get())
    if share is not None and sweep_stopped():  # a job side by side not yet started when the sweep stopped
        return {"error": "not started: the sweep was stopped", "exit_code": PREEMPTED_EXIT_CODE}
    try:
        record = HydraRecord.of_job(cfg, HydraConfig.instance().cfg)
        run_job(cfg, run_dir, share, record)
    except Preempted as stop:
        log.warning("%s; re-run the same command to resume (exit code %d)", stop, PREEMPTED_EXIT_CODE)
        handler = signal.getsignal(stop.signum)
        if callable(handler) and handler is not signal.default_int_handler:
            # A launcher's own handler (submitit's requeue on USR2) runs now that the checkpoint is safe.
            signal.raise_signal(stop.signum)
        # A job that a scheduler runs on its own (submitit) stopped alone (scancel): the sweep records it and
        # goes on; on USR2 submitit has requeued it and its next run reports instead. A job side by side
        # returns, so that its worker lives on and the sweep ends with its summary. Under the basic launcher
        # the signal stops the whole sweep.
        scheduled = multirun and "submitit" in (HydraConfig.get().launcher.get("_target_") or "")
        if share is not None or scheduled and stop.signum != signal.SIGUSR2:
            return {"error": str(stop), "exit_code": PREEMPTED_EXIT_CODE}
        sys.exit(PREEMPTED_EXIT_CODE)
    except UserError as error:
        log.error("%s", error)
        if multirun:
            return {"error": str(error)}  # the sweep goes on; cli/sweep.py reports it at the end
        sys.exit(error.exit_code)
    return None


def main() -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises what it cannot compose, to be said in one line here
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as error:
        setup_logging()
        log.error("%s", composing_error(error))
        sys.exit(UserError.exit_code)


if __name__ == "__main__":
    main()
