"""Timing runs before they run, for `resnet-plan` (cli/plan.py): load a run's data, build its net, time a
few training steps and one evaluation batch with the threads (and GPU) a job of the sweep will have, as many
copies side by side as the launcher runs at once. The steps are the trainer's own (`Trainer.step` on the
run's own data pipeline), so the timing sees whatever a run's settings change (precision, memory format,
compilation).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from itertools import chain, count, islice, repeat
from pathlib import Path

import torch

from ..config import Config, DeviceKind, Role, TrainerConfig, config_to_plain, model_name, walk
from ..errors import UserError
from .distributed import World
from .evaluate import evaluate
from .launch import Share, worker_threads
from .run import Runtime, build, build_trainer, seed_everything

log = logging.getLogger("resnet_train")

WARMUP_STEPS = 2  # untimed: oneDNN's and cuDNN's kernel choice, the loader's workers starting
BARRIER_TIMEOUT_S = 900  # the copies side by side wait this long for each other at most


@dataclass(frozen=True)
class Timing:
    """What one job of a net costs on this machine, in seconds."""

    data_s: float  # loading the data (every job loads its own)
    build_s: float  # building the net, its optimizer and loop
    step_s: float  # one training step (the mean over the timed steps)
    eval_batch_s: float  # one evaluation batch
    eval_batches: int  # the batches of one evaluation, over every evaluation set

    @property
    def setup_s(self) -> float:
        return self.data_s + self.build_s

    @property
    def eval_s(self) -> float:  # one evaluation of every evaluation set
        return self.eval_batch_s * self.eval_batches


def timing_key(config: Config) -> tuple:
    """What decides a run's cost: its settings of schema role `experiment` or `cost`."""
    return tuple(
        (key, repr(value)) for key, value, f in walk(config)
        if f.metadata.get("role", Role.experiment) in (Role.experiment, Role.cost)
    )  # fmt: skip


def data_key(config: Config) -> tuple:
    """Runs with equal keys load the same data: one load is timed for all of them."""
    t = config.trainer  # channels_last: the batches' memory layout
    return (repr(config_to_plain(config)["data"]), t.batch_size, t.eval_batch_size_per_process, t.devices,
            t.device, t.channels_last)  # fmt: skip


def time_configs(configs: list[Config], share: Share, steps: int) -> list[Timing | str]:
    """One Timing per config (in order), `steps` timed training steps each, or the message with which the
    trainer refuses to build that run (an impossible net, schedule or batch: a UserError's message)."""
    groups: dict[tuple, list[int]] = {}
    for index, config in enumerate(configs):
        groups.setdefault(data_key(config), []).append(index)
    timings: list[Timing | str] = [""] * len(configs)
    for indices in groups.values():
        group = [configs[i] for i in indices]
        ranks = rank_share(share, group[0].trainer)
        if ranks.jobs == 1:
            level = log.level
            log.setLevel(logging.ERROR)  # the runs' own lines stay out of the plan's output
            try:
                measured = time_group(group, ranks, steps)
            except Exception as error:  # not the config's fault (memory, a file, a kernel): one line
                names = ", ".join(model_name(c.model.residual, c.model.depth) for c in group)
                raise UserError(f"timing {names} failed: {error!r}") from None
            finally:
                log.setLevel(level)
        else:
            measured = time_side_by_side(group, ranks, steps)
        for i, timing in zip(indices, measured):
            timings[i] = timing
    return timings


def rank_share(share: Share, trainer: TrainerConfig) -> Share:
    """A run of `trainer.devices` local workers is timed as that many copies of one rank (on its own GPU, or
    with its share of the cores as engine/launch.py's spawn_workers gives it) for each of the launcher's jobs
    side by side. The gradients' all-reduce is not timed."""
    if trainer.devices == 1:
        return share
    threads = share.threads
    if trainer.device is DeviceKind.cpu or not share.gpus:  # the rule of spawn_workers
        omp = os.environ.get("OMP_NUM_THREADS")
        threads = worker_threads(True, os.cpu_count() or 1, trainer.devices, omp)
    return replace(share, jobs=share.jobs * trainer.devices, threads=threads)


def time_group(configs: list[Config], share: Share, steps: int, copy: int = 0,
               barrier=None) -> list[Timing | str]:  # fmt: skip
    """Time `configs` (runs of one data key) in this process, as copy `copy` of those side by side: the data
    loads once, then each net builds and runs. Every copy meets `barrier` once per net, whatever failed, so
    that the copies' timed steps start together."""
    threads = torch.get_num_threads()
    gpu = replace(share, job=copy).gpu
    first = configs[0].trainer
    try:
        with tempfile.TemporaryDirectory(prefix="resnet-plan-") as scratch:
            try:
                # One rank's share of each batch and evaluation set, as rank 0 of trainer.devices sees it.
                rank = Runtime.resolve(first, World(0, first.devices, gpu), share.threads)
                rank.enter()
                seed_everything(first.seed)
                started = time.perf_counter()
                data = build(configs[0], Path(scratch), rank).data
                data_s = time.perf_counter() - started
            except UserError as error:  # no device or no data: every run of the group is refused
                for _ in configs:
                    _meet(barrier)
                return [str(error)] * len(configs)
            timings: list[Timing | str] = []
            for i, config in enumerate(configs):
                try:
                    net = _NetUnderTest(config, data, Path(scratch) / str(i), gpu, share.threads)
                except UserError as error:  # this net only
                    net = str(error)
                _meet(barrier)
                timings.append(net if isinstance(net, str) else net.time(data_s, steps))
            return timings
    finally:
        torch.set_num_threads(threads)


def _meet(barrier) -> None:
    if barrier is not None:
        barrier.wait(timeout=BARRIER_TIMEOUT_S)  # a copy gone: BrokenBarrierError, reported by the parent


class _NetUnderTest:
    """One net built on the group's data, its warm-up steps run: ready to time."""

    def __init__(self, config: Config, data, scratch: Path, gpu: int, threads: int | None):
        self.runtime = Runtime.resolve(config.trainer, World(local_rank=gpu), threads)
        self.data = data
        started = time.perf_counter()
        built = build(config, scratch, self.runtime, data)
        self.trainer = build_trainer(config, built, scratch, self.runtime)
        self.batches = chain.from_iterable(data.train.epoch(epoch) for epoch in count())
        self.lr = self.trainer.schedule.lr(0)
        for _ in range(WARMUP_STEPS):
            self.trainer.step(*next(self.batches), self.lr)
        _sync(self.runtime.device)
        self.build_s = time.perf_counter() - started  # with the warm-up steps: a run pays them too, once

    def time(self, data_s: float, steps: int) -> Timing:
        started = time.perf_counter()
        for _ in range(steps):
            self.trainer.step(*next(self.batches), self.lr)
        _sync(self.runtime.device)
        step_s = (time.perf_counter() - started) / steps
        build_s = self.build_s - WARMUP_STEPS * step_s  # the warm-up's extra cost; its steps count as steps
        eval_batch_s = _time_eval_batch(self.trainer.raw_model, self.data.evals, self.runtime)
        self.trainer.logger.close()
        eval_batches = sum(len(batches) for batches in self.data.evals.values())
        return Timing(data_s, max(build_s, 0.0), step_s, eval_batch_s, eval_batches)


def _time_eval_batch(model: torch.nn.Module, evals: dict, runtime: Runtime) -> float:
    """Seconds for one batch of the first evaluation set; the first batch is untimed (kernel choice for the
    evaluation's batch shape). A set of one batch is read again."""
    for batch in islice(chain.from_iterable(repeat(next(iter(evals.values())))), 2):
        started = time.perf_counter()
        evaluate(model, [batch], runtime.device, runtime.amp_dtype)
        _sync(runtime.device)
        elapsed = time.perf_counter() - started
    return elapsed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _copy_main(configs, share, steps, copy, barrier, results) -> None:
    log.setLevel(logging.ERROR)
    try:
        results.put((copy, time_group(configs, share, steps, copy, barrier), None))
    except BaseException as error:  # reported by the parent, which stops the other copies
        barrier.abort()
        results.put((copy, None, str(error) if isinstance(error, UserError) else repr(error)))


def time_side_by_side(configs: list[Config], share: Share, steps: int) -> list[Timing]:
    """`share.jobs` copies of `time_group` at once, each in a process of its own; each net's timing is the
    mean over the copies."""
    context = multiprocessing.get_context("spawn")
    copies = share.jobs
    barrier, results = context.Barrier(copies), context.Queue()
    processes = [context.Process(target=_copy_main, args=(configs, share, steps, copy, barrier, results))
                 for copy in range(copies)]  # fmt: skip
    for process in processes:
        process.start()
    measured = []
    try:
        while len(measured) < copies:
            try:
                copy, timings, error = results.get(timeout=1)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise UserError(f"a timed copy ended with exit code {dead[0].exitcode}") from None
                continue
            if error is not None:
                raise UserError(f"timing copy {copy}: {error}")
            measured.append(timings)
    finally:
        for process in processes:
            if process.is_alive() and len(measured) < copies:
                process.terminate()
            process.join()
    return [_mean_timing(per_copy) for per_copy in zip(*measured)]


def _mean_timing(timings: tuple[Timing | str, ...]) -> Timing | str:
    if isinstance(timings[0], str):
        return timings[0]
    names = ("data_s", "build_s", "step_s", "eval_batch_s")
    return replace(timings[0], **{n: statistics.fmean(getattr(t, n) for t in timings) for n in names})
