#!/usr/bin/env python
"""Does a reduced precision train the degradation experiment's nets as fp32 does? A check anyone can run.

Trains plain-56 and ResNet-56 (`--depth`) with the paper's CIFAR recipe (He et al. 2016, Sec. 4.2: batch 128,
SGD lr 0.1, momentum 0.9, weight decay 1e-4, option-A shortcuts; the primary config's defaults, so the lr
stays 0.1 for a check far shorter than the first drop at 32k) for `--iters` iterations, in fp32 and in the
candidate precision (`--candidate`, bf16 by default), with each seed of `--seeds`. Every run is an ordinary
resnet-train run (the real Hydra config, composed with Hydra's compose API; the trainer's own loop), each in
its own directory under `--workdir`, `--jobs` at a time on one thread each. Re-running the same command
resumes or reuses finished runs.

It prints the training error (%) of every run at a few iterations (`--points`, default 2/3 of the run and its
end), as the run's TensorBoard curve `error/train` holds it: the mean over the `--log-every` iterations up to
that point (25 x 128 = 3,200 images by default). Rows are the nets, columns precision x seed.

The verdict, per net: "within seed spread" when, at every reported point, every candidate run's training
error lies inside the fp32 runs' range widened on both sides by a margin, and "not" otherwise. The margin is
the fp32 runs' spread at that point (max - min), but at least twice the binomial standard error of one
logged value, sqrt(p (1 - p) / n) with p the fp32 mean and n the images behind one logged value: two seeds
can agree closely by chance, and a logged training error is itself a sample. A candidate run that fails
(e.g. a non-finite loss) is "not". It needs two seeds or more, since the fp32 seeds are the yardstick.
The rule is deliberately simple: it asks whether the candidate looks like one more fp32 seed, not whether
two distributions differ; with two seeds a difference it misses can still be real.

Emulated bf16 (a CPU without AVX512_BF16/AMX) stores and rounds values in bf16 as the native path does, so
the check runs on any CPU, there about 5x slower.

    python scripts/precision_check.py --data cifar10-jpeg --out precision.json        # `make precision-check`
    python scripts/precision_check.py --data synthetic --depth 8 --iters 4 --log-every 2   # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

FP32 = "fp32"
CANDIDATES = ("bf16", "fp16")
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One run of the check: a net, a precision and a seed."""

    net: str  # "plain56" or "resnet56"
    precision: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.net}-{self.precision}-seed{self.seed}"


@dataclass
class Verdict:
    net: str
    within: bool
    reasons: list[str] = field(default_factory=list)  # each point where a candidate run falls outside

    @property
    def words(self) -> str:
        return "within seed spread" if self.within else "not"


def binomial_se(error: float, images: int) -> float:
    """The standard error of a training error measured on `images` images."""
    return math.sqrt(max(error * (1 - error), 0.0) / images)


def verdict(
    net: str,
    errors: dict[tuple[str, int], dict[int, float] | None],
    candidate: str,
    points: Sequence[int],
    window_images: int,
) -> Verdict:
    """The module docstring's rule for one net. `errors` maps (precision, seed) to {iteration: training error
    as a fraction}, or None for a run that failed."""
    fp32 = [curve for (precision, _), curve in errors.items() if precision == FP32]
    if len(fp32) < 2 or any(curve is None for curve in fp32):
        return Verdict(net, False, ["needs two finished fp32 runs as the yardstick"])
    result = Verdict(net, True)
    for (precision, seed), curve in sorted(errors.items()):
        if precision != candidate:
            continue
        if curve is None:
            result.within = False
            result.reasons.append(f"{candidate} seed {seed} failed")
            continue
        for point in points:
            values = [c[point] for c in fp32]
            low, high = min(values), max(values)
            margin = max(high - low, 2 * binomial_se(sum(values) / len(values), window_images))
            if not low - margin <= curve[point] <= high + margin:
                result.within = False
                result.reasons.append(
                    f"{candidate} seed {seed} at {point}: {100 * curve[point]:.2f} outside "
                    f"[{100 * (low - margin):.2f}, {100 * (high + margin):.2f}]"
                )
    return result


def table(
    nets: Sequence[str],
    errors: dict[tuple[str, str, int], dict[int, float] | None],
    precisions: Sequence[str],
    seeds: Sequence[int],
    points: Sequence[int],
    verdicts: dict[str, Verdict],
) -> str:
    """Markdown: one row per net, a column per precision x seed holding the training error (%) at each
    point ("a / b"), and the verdict. `errors` maps (net, precision, seed) to {iteration: error} or None
    (a failed run)."""
    columns = [f"{precision} seed {seed}" for precision in precisions for seed in seeds]
    at = " / ".join(str(point) for point in points)
    lines = [
        f"| training error (%) at {at} | " + " | ".join(columns) + " | verdict |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for net in nets:
        cells = []
        for precision in precisions:
            for seed in seeds:
                curve = errors.get((net, precision, seed))
                cells.append(
                    "failed" if curve is None else " / ".join(f"{100 * curve[p]:.1f}" for p in points)
                )
        lines.append(f"| {net} | " + " | ".join(cells) + f" | {verdicts[net].words} |")
    return "\n".join(lines)


def report_points(iters: int, log_every: int, points: Sequence[int] | None) -> list[int]:
    """The iterations to report: the given ones, or the logged iteration at 2/3 of the run and the last."""
    if points is None:
        two_thirds = (2 * iters // 3) // log_every * log_every
        points = [p for p in (two_thirds, iters) if p > 0]
    wrong = [p for p in points if p > iters or p % log_every]
    if wrong:
        raise SystemExit(
            f"precision_check: --points {wrong} are not logged iterations (multiples of --log-every="
            f"{log_every} up to --iters={iters})"
        )
    return sorted(set(points))


def compose_config(job: Job, args: argparse.Namespace):
    """The job's Config, composed from the project's Hydra config as `resnet-train` composes it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from resnet_train.config import check_ranges, config_dir, register_configs

    register_configs()
    data = ["data=synthetic"] if args.data == "synthetic" else ["data=cifar10", f"data.root={args.data}"]
    overrides = [
        f"model.depth={args.depth}",
        f"model.residual={job.net.startswith('resnet')}",
        *data,
        f"trainer.precision={job.precision}",
        f"trainer.seed={job.seed}",
        f"trainer.max_iters={args.iters}",
        # Training error only: the test set once, at the end (the trainer always evaluates there).
        f"trainer.eval_every={args.iters}",
        f"trainer.checkpoint_every={args.iters}",
        f"trainer.log_every={args.log_every}",
        "trainer.progress=false",
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        config = OmegaConf.to_object(compose(config_name="config", overrides=overrides))
    check_ranges(config)
    return config


def run_job(job: Job, config, run_dir: Path, jobs: int, threads: int | None) -> tuple[Job, str | None, float]:
    """Train one job in this process (on `threads` intra-op threads, as one of `jobs` side by side, if
    given); returns (job, the error message of a failed run or None, wall seconds)."""
    from resnet_train.cli.train import Share, launch
    from resnet_train.engine.loop import Preempted
    from resnet_train.errors import UserError
    from resnet_train.logs import setup_logging

    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        if threads is not None:  # a worker process of its own: its log goes to the run's train.log only
            sys.stderr = open(os.devnull, "w")  # (the trainer's tqdm handler writes to sys.stderr)
            setup_logging(file=run_dir / "train.log")
        launch(config, run_dir, Share(jobs, threads) if threads else None)
    except UserError as error:
        return job, str(error), time.perf_counter() - started
    except Preempted as stop:
        if threads is None:
            raise  # in this process: the whole check stops
        return job, f"{stop} (the same command resumes it)", time.perf_counter() - started
    return job, None, time.perf_counter() - started


def _worker(item: tuple) -> tuple[Job, str | None, float]:
    return run_job(*item, threads=1)


def train_errors(run_dir: Path, points: Sequence[int]) -> dict[int, float] | None:
    """{point: training error} from the run's TensorBoard curve, or None when a point is missing."""
    from resnet_train.analysis.runs import read_curves
    from resnet_train.engine.logger import TRAIN_ERROR

    curve = dict(read_curves(run_dir).get(TRAIN_ERROR, []))
    return {p: curve[p] for p in points} if all(p in curve for p in points) else None


def machine() -> dict:
    import torch

    from resnet_train.engine.run import cpu_has_native_bf16

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "native_bf16": cpu_has_native_bf16(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 tree (train/, test/), or 'synthetic'")
    parser.add_argument("--iters", type=int, default=300, help="iterations per run (default 300)")
    parser.add_argument("--candidate", default="bf16", choices=CANDIDATES, help="the precision to check")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds, two or more (default 0,1)")
    parser.add_argument("--depth", type=int, default=56, help="depth of the plain and residual net (56)")
    parser.add_argument("--log-every", type=int, default=25, help="iterations per logged training error")
    parser.add_argument("--points", default=None, help="comma-separated iterations to report (2/3 and end)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each (default 2)")
    parser.add_argument("--workdir", type=Path, default=None, help="default outputs/precision-check-ITERS")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every run, e.g. trainer.device=cuda"
    )
    args = parser.parse_args(argv)
    try:
        args.seeds = sorted({int(seed) for seed in args.seeds.split(",")})
        points = [int(p) for p in args.points.split(",")] if args.points else None
    except ValueError:
        parser.error("--seeds and --points take comma-separated whole numbers")
    if len(args.seeds) < 2:
        parser.error("--seeds needs two seeds or more: the fp32 seeds' spread is the yardstick")
    if args.iters < 1 or args.log_every < 1 or args.jobs < 1:
        parser.error("--iters, --log-every and --jobs must be >= 1")
    if args.iters % args.log_every:
        parser.error(f"--iters={args.iters} must be a multiple of --log-every={args.log_every}")
    if args.data != "synthetic" and not Path(args.data, "train").is_dir():
        parser.error(f"--data {args.data}: no train/ folder there (give the CIFAR-10 tree, or 'synthetic')")
    args.points = report_points(args.iters, args.log_every, points)
    args.workdir = args.workdir or Path(f"outputs/precision-check-{args.iters}")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    from resnet_train.engine.loop import Preempted

    args = parse_args(argv)
    nets = [f"plain{args.depth}", f"resnet{args.depth}"]
    precisions = [FP32, args.candidate]
    # Net by net, so that an interrupted check has whole nets to show.
    jobs = [Job(net, precision, seed) for net in nets for precision in precisions for seed in args.seeds]
    print(
        f"precision check: {', '.join(nets)}, {' vs '.join(precisions)}, seeds {args.seeds}, "
        f"{args.iters} iterations, {args.jobs} side by side -> {args.workdir}",
        flush=True,
    )
    started = time.perf_counter()
    work = [(job, compose_config(job, args), args.workdir / job.name, args.jobs) for job in jobs]
    if args.jobs == 1:
        done = (run_job(*item, threads=None) for item in work)
    else:
        pool = multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1)
        done = pool.imap_unordered(_worker, work)
        pool.close()
    runs, failures = {}, {}
    try:
        for job, failure, seconds in done:
            errors = None if failure else train_errors(args.workdir / job.name, args.points)
            shown = " / ".join(f"{100 * e:.1f}" for e in errors.values()) if errors else "no curve"
            print(f"  {job.name}: {failure or shown} ({seconds / 60:.1f} min)", flush=True)
            runs[(job.net, job.precision, job.seed)] = errors
            if failure or errors is None:
                failures[job.name] = failure or "no training error logged at the reported points"
    except (KeyboardInterrupt, Preempted):
        sys.exit("precision_check: stopped; the same command resumes the runs from their checkpoints")
    window = args.log_every * work[0][1].trainer.batch_size  # images behind one logged training error
    verdicts = {
        net: verdict(
            net, {(p, s): e for (n, p, s), e in runs.items() if n == net}, args.candidate, args.points, window
        )
        for net in nets
    }
    wall = time.perf_counter() - started
    print(table(nets, runs, precisions, args.seeds, args.points, verdicts))
    for v in verdicts.values():
        print(f"{v.net}: {v.words}" + (f" ({'; '.join(v.reasons)})" if v.reasons else ""))
    print(f"wall time {wall / 60:.1f} min")
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "iterations": args.iters,
        "log_every": args.log_every,
        "points": args.points,
        "seeds": args.seeds,
        "candidate": args.candidate,
        "data": args.data,
        "overrides": args.overrides,
        "machine": machine(),
        "wall_time_s": round(wall, 1),
        "failures": failures,
        "train_error": {f"{n}/{p}/seed{s}": e and _json_points(e) for (n, p, s), e in runs.items()},
        "verdict": {
            net: {"within_seed_spread": v.within, "reasons": v.reasons} for net, v in verdicts.items()
        },
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _json_points(errors: dict[int, float]) -> dict[str, float]:
    return {str(point): error for point, error in errors.items()}


if __name__ == "__main__":
    main()
