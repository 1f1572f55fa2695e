"""The end of a sweep (`resnet-train -m ...`): one line per failed job, a summary, and a non-zero exit.

Hydra records every job's outcome in a `JobReturn` and hands it to the callbacks' `on_job_end`, in the process
that ran the job: the sweep's own process under the basic launcher, a worker process under the joblib
launcher, another machine under SLURM. Each outcome is therefore appended to a small file in the sweep
directory (named by the environment, which launchers pass on to their jobs), and `on_multirun_end` reads it.
A job that ends in a UserError returns {"error": message} instead of raising, so Hydra's sweeper goes on
to the end rather than stopping the sweep with that job's traceback.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..errors import UserError

log = logging.getLogger("resnet_train")

OUTCOMES_ENV = "RESNET_TRAIN_SWEEP_OUTCOMES"
FAILED_SWEEP_EXIT_CODE = 1


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
        if not options or not override.is_choice_sweep():
            continue
        for value in override.sweep_string_iterator():
            if value not in options:
                unknown.append(f"{override.key_or_group}={value} (one of {', '.join(options)})")
    return unknown


def remove_stale_outcomes(sweep_dir: Path, host: str) -> None:
    """Remove the outcome files that sweeps on this host left when they were killed (their process is gone);
    those of running sweeps, here or on other hosts, stay."""
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


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        unknown = unknown_choices(list(config.hydra.overrides.task))
        if unknown:
            log.error("no job of the sweep ran: no such config: %s", "; ".join(unknown))
            sys.exit(UserError.exit_code)
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        remove_stale_outcomes(sweep_dir, host)
        path = sweep_dir / f".outcomes-{host}-{os.getpid()}.jsonl"
        path.write_text("")
        os.environ[OUTCOMES_ENV] = str(path)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        path = os.environ.get(OUTCOMES_ENV)
        if not path:  # a single run
            return
        outcome = {"overrides": list(job_return.overrides or []), "error": job_error(job_return)}
        with open(path, "a") as file:  # one short append per job: whole lines even from parallel jobs
            file.write(json.dumps(outcome) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        path = Path(os.environ.pop(OUTCOMES_ENV))
        outcomes: dict[tuple, dict] = {}
        for line in path.read_text().splitlines():  # one line per job, or per task of a multi-task job
            outcome = json.loads(line)
            seen = outcomes.setdefault(tuple(outcome["overrides"]), outcome)
            seen["error"] = seen["error"] or outcome["error"]
        path.unlink()
        outcomes = list(outcomes.values())
        if not outcomes:
            return
        names = distinguishing([outcome["overrides"] for outcome in outcomes])
        failed = [f"{name}: {o['error']}" for name, o in zip(names, outcomes) if o["error"] is not None]
        finished = f"{len(outcomes) - len(failed)} of {len(outcomes)} jobs finished"
        if not failed:
            log.info("%s", finished)
            return
        log.error("%s; failed: %s", finished, "; ".join(failed))
        sys.exit(FAILED_SWEEP_EXIT_CODE)
