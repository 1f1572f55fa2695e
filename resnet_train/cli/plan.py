"""`resnet-plan`: what a sweep will cost, before it runs.

    resnet-plan experiment=cifar_plain_vs_resnet_cpu data.root=cifar10-jpeg
    resnet-plan model=plain20,plain56 trainer.seed=0,1,2 hydra/launcher=side_by_side --budget 60

It composes every job of `resnet-train -m OVERRIDES` as Hydra's basic sweeper does and says which jobs are
finished, which resume and from which iteration, which are new, and which the trainer would refuse (and why).
Then it times each distinct net to run on this machine (the data loaded, a few training steps and one
evaluation batch, with the threads or GPU each job will have and as many copies side by side as the launcher
runs at once) and prints each job's and the whole sweep's wall-clock estimate. `--budget MINUTES` adds the
largest `trainer.max_iters` with which the whole sweep, every job from iteration 0 and keeping its number of
evaluations, fits the budget.

Launchers: Hydra's basic one (one job after another), joblib (`hydra/launcher=side_by_side`: n_jobs at once,
sharing the cores or GPUs) and SLURM through submitit (up to array_parallelism at once; timed with
cpus_per_task threads, without the queue's wait). Nothing is written in the sweep's directories; --json FILE
writes the plan (a new file, or with --force any file but one of a run).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from ..checks import composing_error
from ..config import Config, config_to_plain, model_name, override_text, walk
from ..engine.distributed import World
from ..engine.estimate import evaluations, fit_iters, job_seconds, sweep_seconds
from ..engine.launch import Share, check_launch
from ..engine.probe import Timing, time_configs, timing_key
from ..engine.rundir import find_resume_checkpoint, lock_holder, run_complete
from ..errors import UserError
from ..logs import setup_logging
from ..outputs import check_output, write_text
from .sweep import BASIC_LAUNCHER, JOBLIB_LAUNCHER, distinguishing
from .train import job_config, job_share

log = logging.getLogger("resnet_train")


@dataclass
class PlannedJob:
    """One job of the sweep: where it runs, what it would do there, and its estimate (seconds)."""

    num: int
    overrides: list[str]
    run_dir: str
    state: str  # new | resumes | finished | running | refused
    start: int = 0  # the iteration it trains from
    max_iters: int = 0
    eval_every: int = 1
    reason: str | None = None  # why it is refused, or who holds it
    timing: Timing | None = None
    estimate_s: float | None = None

    @property
    def to_run(self) -> bool:
        return self.state in ("new", "resumes")


@dataclass(frozen=True)
class LauncherPlan:
    """How the sweep's launcher runs the jobs: `slots` at once, each timed as `placement` says."""

    name: str
    slots: int
    placement: Share
    note: str  # how it runs them, in a line
    label: str  # the same in a few words


def compose_sweep(overrides: list[str]) -> tuple[DictConfig, list[DictConfig]]:
    """The sweep's config and each job's composed config (with its `hydra` node), as Hydra launches them."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    from ..config import config_dir, register_configs

    register_configs()
    # Hydra's multirun entry point would also launch the jobs: its own pieces are used instead (the basic
    # sweeper's expansion and the config loader's job composition, internal to hydra-core 1.3, pinned <1.4).
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="train"):
        hydra = GlobalHydra.instance().hydra
        sweep = hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN)
        sweeper = sweep.hydra.sweeper
        if not sweeper._target_.endswith("BasicSweeper"):
            raise UserError("resnet-plan expands sweeps as Hydra's basic sweeper does, not "
                            f"{sweeper._target_}")  # fmt: skip
        params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
        parser = OverridesParser.create(config_loader=hydra.config_loader)
        parsed = parser.parse_overrides(params + list(sweep.hydra.overrides.task))
        jobs = []
        for num, job_overrides in enumerate(BasicSweeper.split_arguments(parsed, None)[0]):
            job = hydra.config_loader.load_sweep_config(sweep, list(job_overrides))
            with open_dict(job):
                job.hydra.job.num, job.hydra.job.id = num, f"plan_{num}"
                job.hydra.mode = RunMode.MULTIRUN
            jobs.append(job)
    return sweep, jobs


def launcher_plan(sweep: DictConfig, jobs: list[DictConfig], to_time: int) -> LauncherPlan:
    """How the launcher runs the jobs, and so how to time `to_time` of them (as many side by side as run
    at once)."""
    launcher = sweep.hydra.launcher
    target = launcher.get("_target_") or ""
    gpus = torch.cuda.device_count()
    if target == BASIC_LAUNCHER:
        note = "one job after another, each on the whole machine"
        return LauncherPlan("basic", 1, Share(1, None, gpus), note, "one job after another")
    if target == JOBLIB_LAUNCHER:
        share = job_share(jobs[0].hydra)
        placement = Share(max(1, min(share.jobs, to_time)), share.threads, gpus)
        where = f"{share.threads} thread(s)" + (f", {gpus} GPU(s) shared" if gpus else "") + " each"
        note = f"{share.jobs} side by side, {where}"
        return LauncherPlan("joblib", share.jobs, placement, note, f"{share.jobs} side by side")
    if "submitit" in target:
        slots = launcher.get("array_parallelism", 256)
        threads = min(launcher.get("cpus_per_task") or os.cpu_count() or 1, os.cpu_count() or 1)
        note = (f"SLURM, up to {slots} jobs at once, each on its own allocation; timed on this machine with "
                f"{threads} thread(s), without the queue's wait")  # fmt: skip
        return LauncherPlan("slurm", slots, Share(1, threads, gpus), note, f"SLURM, up to {slots} at once")
    raise UserError(f"resnet-plan knows the basic, joblib and submitit launchers, not {target}")


def plan_job(job: DictConfig, scheduled: bool = False) -> tuple[PlannedJob, Config | None]:
    """What the job would do in its run directory: the trainer's own checks and resume rules, read only.
    `scheduled`: a scheduler places its workers (their count is the cluster's to refuse, not this
    machine's)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import OmegaConfBaseException

    planned = PlannedJob(job.hydra.job.num, list(job.hydra.overrides.task), "", "new")
    task = job.copy()  # the job's config as Hydra hands it to the task: without its `hydra` node
    with open_dict(task):
        del task["hydra"]
    try:
        try:  # as Hydra's launchers resolve it
            HydraConfig.instance().set_config(job)
            run_dir = Path(job.hydra.sweep.dir) / job.hydra.sweep.subdir
        except OmegaConfBaseException as error:
            raise UserError(str(error).strip().splitlines()[0]) from None
        planned.run_dir = str(run_dir)
        config = job_config(task)
        check_launch(config, World(0, config.trainer.devices) if scheduled else None)
        planned.max_iters, planned.eval_every = config.trainer.max_iters, config.trainer.eval_every
        holder = lock_holder(run_dir)
        if holder is not None:
            planned.state, planned.reason = "running", holder
            return planned, config
        checkpoint = find_resume_checkpoint(config.trainer.resume, run_dir, config_to_plain(config))
    except UserError as error:
        planned.state, planned.reason = "refused", str(error)
        return planned, None
    if checkpoint is not None:
        planned.start = checkpoint["trainer"]["iteration"]
        finished = run_complete(run_dir, planned.start, planned.max_iters)
        planned.state = "finished" if finished else "resumes"
    return planned, config


def time_jobs(planned: list[PlannedJob], configs: list[Config | None], launcher: LauncherPlan, steps: int,
              time_all: bool) -> float:  # fmt: skip
    """Time each distinct net among the jobs to run (every job that can run, with `time_all`); returns the
    seconds the timing took. Under a scheduler a net this machine cannot run is left untimed, not refused."""
    chosen = [i for i, job in enumerate(planned) if configs[i] is not None and (time_all or job.to_run)]
    distinct: dict[tuple, int] = {}
    for i in chosen:
        distinct.setdefault(timing_key(configs[i]), i)
    started = time.perf_counter()
    timings = time_configs([configs[i] for i in distinct.values()], launcher.placement, steps)
    by_key = dict(zip(distinct, timings))
    for i in chosen:
        job, timing = planned[i], by_key[timing_key(configs[i])]
        if isinstance(timing, str) and launcher.name == "slurm":  # e.g. no GPU on this login node
            job.reason = f"not timed on this machine: {timing}"
            continue
        if isinstance(timing, str):  # the trainer would refuse to build this net
            job.state, job.reason, configs[i] = "refused", timing, None
            continue
        job.timing = timing
        if job.to_run:
            job.estimate_s = job_seconds(job.timing, job.start, job.max_iters, job.eval_every)
    return time.perf_counter() - started


def budget_fit(planned: list[PlannedJob], slots: int, budget_s: float, spent_s: float = 0.0,
               min_iters: int = 0) -> dict:  # fmt: skip
    """The largest trainer.max_iters (a multiple of 4 and of each job's evaluation count, so that the
    schedule's fractions and the evaluations fall on whole iterations) with which the whole sweep, every job
    from iteration 0 with as many evaluations as now, fits `budget_s` less `spent_s` (the plan's own time).
    Fewer than `min_iters` is a UserError naming the budget that `min_iters` needs."""
    jobs = [job for job in planned if job.timing is not None]
    if not jobs:
        raise UserError("no job of the sweep can run, so no length fits the budget")
    counts = [evaluations(0, job.max_iters, job.eval_every) for job in jobs]
    left_s = budget_s - spent_s

    def sweep_time(iters: int) -> float:
        jobs_s = [job_seconds(job.timing, 0, iters, max(1, iters // n)) for job, n in zip(jobs, counts)]
        return sweep_seconds(jobs_s, slots)

    multiple = math.lcm(4, *counts)
    iters = fit_iters(sweep_time, left_s, multiple=multiple)
    if iters is None:
        raise UserError(f"not even {multiple} iterations a job fit a budget of {budget_s / 60:g} min "
                        f"({spent_s:.0f} s of it went to this plan)")  # fmt: skip
    if iters < min_iters:
        needed = math.ceil((sweep_time(min_iters) + spent_s) / 60)
        raise UserError(
            f"a budget of {budget_s / 60:g} min fits {iters} iterations a job, fewer than the {min_iters} "
            f"asked for (--min-iters); {min_iters} take a budget of {needed} min"
        )
    fit = {"budget_s": left_s, "max_iters": iters, "sweep_s": sweep_time(iters)}
    if len(set(counts)) == 1:
        fit["eval_every"], fit["evaluations"] = iters // counts[0], counts[0]
    return fit


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60):02d} min"


def print_plan(plan: dict, planned: list[PlannedJob], configs: list, launcher: LauncherPlan) -> None:
    """The plan as a table, a job a line, then what was timed, the whole sweep and the budget's fit."""
    if len(planned) > 1:
        names = [name.replace(",", " ") for name in distinguishing([job.overrides for job in planned])]
    else:
        config = configs[0]
        names = [model_name(config.model.residual, config.model.depth) if config else "the job"]
    width = max(3, *(len(name) for name in names))
    print(f"{len(planned)} job(s) in {plan['sweep_dir']}; {launcher.note}")
    print(f"  #  {'job':<{width}}  {'state':<18} {'iterations':>13} {'step':>9} "
          f"{'evaluation':>10} {'setup':>10} {'estimate':>10}")  # fmt: skip
    for job, name in zip(planned, names):
        t = job.timing if job.to_run else None
        iterations = f"{job.start} -> {job.max_iters}" if job.to_run else ""
        step = f"{t.step_s:.3f} s" if t else ""
        figures = [duration(t.eval_s), duration(t.setup_s)] if t else ["", ""]
        figures.append(duration(job.estimate_s) if job.to_run else "")
        states = {"resumes": f"resumes at {job.start}", "finished": f"finished ({job.start})"}
        state = states.get(job.state, job.state)
        print(f"{job.num:>3}  {name:<{width}}  {state:<18} {iterations:>13} {step:>9} "
              + " ".join(f"{figure:>10}" for figure in figures))  # fmt: skip
    for job in planned:
        if job.state == "refused":
            print(f"job {job.num} would be refused: {job.reason}")
        elif job.state == "running":
            print(f"job {job.num} is running now: {job.reason}")
        elif job.reason:
            print(f"job {job.num} is {job.reason}")
    timed = len({timing_key(c) for job, c in zip(planned, configs) if job.timing is not None})
    side = launcher.placement.jobs
    if timed:
        together = f", {side} copies side by side" if side > 1 else ""
        steps = f"{plan['steps']} step{'s' if plan['steps'] > 1 else ''}"
        print(f"timed {timed} distinct net(s) on this machine, {steps} and one evaluation batch each"
              f"{together} ({duration(plan['timing_s'])})")  # fmt: skip
    to_run = sum(job.to_run for job in planned)
    untimed = sum(job.to_run and job.estimate_s is None for job in planned)
    left_out = f"; {untimed} not timed, not counted" if untimed else ""
    print(f"the sweep: {duration(plan['sweep_s'])} for {to_run} job(s) to run ({launcher.label}{left_out})")
    if plan["fit"] is not None:
        print_fit(plan["fit"], [c for c in configs if c is not None])
    sys.stdout.flush()


def print_fit(fit: dict, configs: list[Config]) -> None:
    """The budget's length, and the settings that move with it: the evaluations and the schedule's
    iteration counts (milestones; scripts/fig6.sh moves them)."""
    print(f"budget {duration(fit['budget_s'])} left: trainer.max_iters={fit['max_iters']} fits (the sweep "
          f"{duration(fit['sweep_s'])}, every job from iteration 0)")  # fmt: skip
    if "eval_every" in fit:
        evaluations = f"{fit['evaluations']} evaluation{'s' if fit['evaluations'] > 1 else ''}"
        print(f"  with trainer.eval_every={fit['eval_every']}: {evaluations} a job, as now")
    for config in configs[:1]:  # the schedule's settings counted in iterations move with the length
        scale = fit["max_iters"] / config.trainer.max_iters
        for key, value, f in walk(config.sched, "sched."):
            if f.metadata.get("iterations") and value:
                moved = [round(v * scale) for v in value] if isinstance(value, list) else round(value * scale)
                print(f"  with {key}={override_text(moved)}: the lr changes at the same fractions of the run")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="resnet-plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="the overrides of `resnet-train -m`")
    parser.add_argument("-m", "--multirun", action="store_true", help="accepted as resnet-train takes it")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per net (default 10)")
    parser.add_argument("--budget", type=float, metavar="MINUTES",
                        help="the largest trainer.max_iters that fits")  # fmt: skip
    parser.add_argument("--min-iters", type=int, default=0, metavar="N",
                        help="with --budget: refuse a fit below N iterations")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the plan here")
    parser.add_argument("--force", action="store_true", help="replace --json if it exists")
    args = parser.parse_intermixed_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, not {args.steps}")
    if args.budget is not None and not args.budget > 0:
        parser.error(f"--budget must be a positive number of minutes, not {args.budget:g}")
    return args


def plan(args: argparse.Namespace) -> dict:
    """Compose, check and time the sweep of `args.overrides`; print the plan and return it as JSON data."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    started = time.perf_counter()
    try:
        sweep, jobs = compose_sweep(args.overrides)
        scheduled = "submitit" in (sweep.hydra.launcher.get("_target_") or "")
        jobs_and_configs = [plan_job(job, scheduled) for job in jobs]
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(composing_error(error)) from None
    planned = [job for job, _ in jobs_and_configs]
    configs = [config for _, config in jobs_and_configs]
    # With a budget every job is timed (the fit runs them all from iteration 0), as many at once as will run.
    time_all = args.budget is not None
    to_time = sum(job.to_run or (time_all and config is not None) for job, config in jobs_and_configs)
    launcher = launcher_plan(sweep, jobs, to_time)
    timing_s = time_jobs(planned, configs, launcher, args.steps, time_all)
    sweep_s = sweep_seconds([job.estimate_s for job in planned if job.estimate_s is not None], launcher.slots)
    fit, budget_error = None, None
    if time_all:
        try:
            spent_s = time.perf_counter() - started
            fit = budget_fit(planned, launcher.slots, args.budget * 60, spent_s, args.min_iters)
        except UserError as error:  # said after the plan, which shows why
            budget_error = error
    result = {
        "sweep_dir": sweep.hydra.sweep.dir,
        "launcher": {"name": launcher.name, "slots": launcher.slots, **asdict(launcher.placement)},
        "steps": args.steps, "timing_s": timing_s, "sweep_s": sweep_s, "fit": fit,
        "jobs": [{**asdict(job), "timing": asdict(job.timing) if job.timing else None} for job in planned],
    }  # fmt: skip
    print_plan(result, planned, configs, launcher)
    if budget_error is not None:
        raise budget_error
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    try:
        if args.json:  # before the timing: a plan that cannot be written is refused at once
            check_output(args.json, force=args.force, option="--json")
        result = plan(args)
        if args.json:
            write_text(args.json, json.dumps(result, indent=2) + "\n")
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
