"""The end of a sweep (`resnet-train -m ...`): one line per failed job, a summary, and a non-zero exit.

Hydra hands each job's `JobReturn` to `on_job_end` in the process that ran the job (the sweep's own, a joblib
worker, another machine under SLURM), so each outcome is appended to a file in the sweep directory, named by
the environment that launchers pass on to their jobs, and `on_multirun_end` reads it. A job that ends in a
UserError returns {"error": message} instead of raising, so that Hydra's sweeper goes on to the end; a job
stopped by a signal (scancel) returns {"error": message, "exit_code": 75}, listed as stopped, to resume.

`hydra.callbacks.sweep_summary.fail_fast=true` ends the sweep at the first failed job, with the summary of
the jobs run so far. Only Hydra's basic launcher runs the jobs one after another, so that the next one can be
held back; with the joblib or SLURM launcher the option is refused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..engine.signals import PREEMPTED_EXIT_CODE as STOPPED_EXIT_CODE
from ..errors import UserError

log = logging.getLogger("resnet_train")

OUTCOMES_ENV = "RESNET_TRAIN_SWEEP_OUTCOMES"
FAILED_SWEEP_EXIT_CODE = 1
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def job_error(job_return: JobReturn) -> str | None:
    """Why a job failed, or None if it finished."""
    if job_return.status is JobStatus.FAILED:  # not a UserError: a bug, whose traceback Hydra prints
        error = job_return._return_value  # the public `return_value` re-raises it
        return f"{type(error).__name__}: {error}"
    value = job_return.return_value
    return value["error"] if isinstance(value, dict) and "error" in value else None


def distinguishing(overrides: list[list[str]]) -> list[str]:
    """Each job's overrides without those every job shares: `model.depth=21` rather than the whole line."""
    shared = set.intersection(*map(set, overrides)) if len(overrides) > 1 else set()
    return [",".join(o for o in job if o not in shared) or ",".join(job) for job in overrides]


def unknown_choices(overrides: list[str]) -> list[str]:
    """The values of swept config groups that name no config (`model=resnet20,resnet99` -> ["model=resnet99
    (one of plain101, ...)"]). Hydra would refuse the whole sweep with a message per value and no summary."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    loader = GlobalHydra.instance().config_loader()
    unknown = []
    for override in OverridesParser.create().parse_overrides(overrides):
        options = loader.get_group_options(override.key_or_group)  # empty: not a config group
        if options and override.is_choice_sweep():
            unknown += [f"{override.key_or_group}={value} (one of {', '.join(options)})"
                        for value in override.sweep_string_iterator() if value not in options]  # fmt: skip
    return unknown


def remove_stale_outcomes(sweep_dir: Path, host: str) -> None:
    """Remove the outcome files of sweeps on this host whose process is gone (killed)."""
    for path in sweep_dir.glob(".outcomes-*.jsonl"):
        owner, _, pid = path.stem.removeprefix(".outcomes-").rpartition("-")  # `.outcomes-PID` before hosts
        if owner not in ("", host) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # another user's live process
            pass


def sweep_stopped() -> bool:
    """Whether a job of this sweep has stopped on a signal (the jobs side by side after it do not train)."""
    path = os.environ.get(OUTCOMES_ENV)
    if not path or not Path(path).is_file():
        return False
    outcomes = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return any(outcome.get("exit_code") == STOPPED_EXIT_CODE for outcome in outcomes)


def _wait_for_jobs(signum: int, frame) -> None:
    """The sweep process's SIGINT and SIGTERM handler while its jobs run side by side: it passes the signal
    on to the jobs (a signal to the process group reaches them anyway, and a second one changes nothing),
    which say it, finish their checkpoint and return; the sweep then ends with its summary instead of tearing
    them down mid-save. It logs nothing: a handler that logs could interrupt a line being written, whose
    stream then refuses the reentrant write."""
    for job in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):  # a job that ended since
            os.kill(job.pid, signum)


class SweepSummary(Callback):
    def __init__(self, fail_fast: bool = False):
        self.fail_fast = fail_fast

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        launcher = config.hydra.launcher.get("_target_")
        if self.fail_fast and launcher != BASIC_LAUNCHER:
            log.error("hydra.callbacks.sweep_summary.fail_fast=true needs jobs run one after another (the "
                      "basic launcher); %s starts them together, so no failure could hold the others back",
                      launcher)  # fmt: skip
            sys.exit(UserError.exit_code)
        unknown = unknown_choices(list(config.hydra.overrides.task))
        if unknown:
            log.error("no job of the sweep ran: no such config: %s", "; ".join(unknown))
            sys.exit(UserError.exit_code)
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        remove_stale_outcomes(sweep_dir, host)
        if "submitit" in (launcher or ""):
            # submitit takes a job as done once its result file exists, and a restarted cluster reuses job
            # ids: an earlier sweep's results would pass for this sweep's jobs, which then never train.
            for stale in (sweep_dir / ".submitit").glob("*/*_result.pkl"):
                stale.unlink()
        path = sweep_dir / f".outcomes-{host}-{os.getpid()}.jsonl"
        path.write_text("")
        os.environ[OUTCOMES_ENV] = str(path)
        if launcher == JOBLIB_LAUNCHER:  # a handler, not SIG_IGN, which the jobs' processes would inherit
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, _wait_for_jobs)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        path = os.environ.get(OUTCOMES_ENV)
        if not path:  # a single run
            return
        value = job_return.return_value if job_return.status is JobStatus.COMPLETED else None
        exit_code = value.get("exit_code") if isinstance(value, dict) else None
        outcome = {"overrides": list(job_return.overrides or []), "error": job_error(job_return),
                   "exit_code": exit_code}  # fmt: skip
        with open(path, "a") as file:  # one short append per job: whole lines even from parallel jobs
            file.write(json.dumps(outcome) + "\n")
        if self.fail_fast and outcome["error"] is not None:
            self.report("the sweep stopped at this failure (fail_fast); the jobs after it did not run")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        self.report()

    def report(self, note: str | None = None) -> None:
        """Log the summary of the jobs that ran; exit non-zero if any of them failed or stopped."""
        path = Path(os.environ.pop(OUTCOMES_ENV))
        outcomes: dict[tuple, dict] = {}
        for line in path.read_text().splitlines():  # one line per job, or per task of a multi-task job
            outcome = json.loads(line)
            seen = outcomes.setdefault(tuple(outcome["overrides"]), outcome)
            seen["error"] = seen["error"] or outcome["error"]
            seen["exit_code"] = seen.get("exit_code") or outcome.get("exit_code")
        path.unlink()
        outcomes = list(outcomes.values())
        if not outcomes:
            log.error("no job of the sweep reported how it ended (%s)", note or "did any of them run?")
            sys.exit(FAILED_SWEEP_EXIT_CODE)
        names = distinguishing([outcome["overrides"] for outcome in outcomes])
        ended = [(name, o) for name, o in zip(names, outcomes) if o["error"] is not None]
        stopped = [f"{name}: {o['error']}" for name, o in ended if o.get("exit_code") == STOPPED_EXIT_CODE]
        failed = [f"{name}: {o['error']}" for name, o in ended if o.get("exit_code") != STOPPED_EXIT_CODE]
        report = [f"{len(outcomes) - len(ended)} of {len(outcomes)} jobs finished"]
        if stopped:
            report.append(f"stopped (exit code {STOPPED_EXIT_CODE}; re-run the sweep to resume): "
                          f"{'; '.join(stopped)}")  # fmt: skip
        if failed:
            report.append(f"failed: {'; '.join(failed)}")
        if note:
            report.append(note)
        if not ended:
            log.info("%s", report[0])
            return
        log.error("%s", "; ".join(report))
        sys.exit(FAILED_SWEEP_EXIT_CODE if failed else STOPPED_EXIT_CODE)
