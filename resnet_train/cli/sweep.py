"""The end of a sweep (`resnet-train -m ...`): one line per failed job, a summary, and a non-zero exit.

Hydra records every job's outcome in a `JobReturn` and hands it to the callbacks' `on_job_end`, in the process
that ran the job: the sweep's own process under the basic launcher, a worker process under the joblib
launcher, another machine under SLURM. Each outcome is therefore appended to a small file in the sweep
directory (named by the environment, which launchers pass on to their jobs), and `on_multirun_end` reads it.
A job that ends in a UserError returns {"error": message} instead of raising, so Hydra's sweeper goes on
to the end rather than stopping the sweep with that job's traceback. A SLURM job stopped by a signal
(scancel) returns {"error": message, "exit_code": 75}: the summary lists it as stopped, to resume.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("resnet_train")

OUTCOMES_ENV = "RESNET_TRAIN_SWEEP_OUTCOMES"
FAILED_SWEEP_EXIT_CODE = 1
STOPPED_EXIT_CODE = 75  # as a stopped run's own (engine/loop.py): checkpoints written, re-run to resume


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


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        path = sweep_dir / f".outcomes-{os.getpid()}.jsonl"
        path.write_text("")
        os.environ[OUTCOMES_ENV] = str(path)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        path = os.environ.get(OUTCOMES_ENV)
        if not path:  # a single run
            return
        value = job_return.return_value if job_return.status is JobStatus.COMPLETED else None
        exit_code = value.get("exit_code") if isinstance(value, dict) else None
        outcome = {
            "overrides": list(job_return.overrides or []),
            "error": job_error(job_return),
            "exit_code": exit_code,
        }
        with open(path, "a") as file:  # one short append per job: whole lines even from parallel jobs
            file.write(json.dumps(outcome) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
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
            return
        names = distinguishing([outcome["overrides"] for outcome in outcomes])
        ended = [(name, o) for name, o in zip(names, outcomes) if o["error"] is not None]
        stopped = [f"{name}: {o['error']}" for name, o in ended if o.get("exit_code") == STOPPED_EXIT_CODE]
        failed = [f"{name}: {o['error']}" for name, o in ended if o.get("exit_code") != STOPPED_EXIT_CODE]
        report = [f"{len(outcomes) - len(ended)} of {len(outcomes)} jobs finished"]
        if stopped:
            report.append(
                f"stopped (exit code {STOPPED_EXIT_CODE}; re-run the sweep to resume): {'; '.join(stopped)}"
            )
        if failed:
            report.append(f"failed: {'; '.join(failed)}")
        if not ended:
            log.info("%s", report[0])
            return
        log.error("%s", "; ".join(report))
        sys.exit(FAILED_SWEEP_EXIT_CODE if failed else STOPPED_EXIT_CODE)
