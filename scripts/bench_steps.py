#!/usr/bin/env python
"""Time the bare training step of resnet-train's settings and of the common public loop, in turns; or the
throughput of several jobs running side by side against one job on all the threads.

Steps (the default): every setting of --settings (see scripts/benchlib.py: `plain` fp32 contiguous eager,
`fast` the device's default, the CPU options `cpu_cl`, `cpu_compile`, `cpu_cl_compile`, `cpu_bf16`) and the
baseline step (eager fp32, `loss.item()` every step), taken in turns: --rounds rounds of --round-steps steps
each, medians reported, so that load from other work on the machine falls on all of them alike.

--side-by-side N: 1 job x T threads against N jobs x T/N threads running at once (T = --threads or every
core), each job timing --round-steps steps of the first of --settings, all jobs starting together.

    python scripts/bench_steps.py --device cpu --models resnet20 --settings plain,cpu_cl,cpu_compile,cpu_bf16
    python scripts/bench_steps.py --device cpu --side-by-side 2 --models resnet20 --settings cpu_cl
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
from benchlib import (
    baseline_step,
    device_for,
    make_parser,
    print_rows,
    project_step,
    sync,
    write_report,
)


def time_steps_interleaved(model: str, args, device: torch.device) -> list[dict]:
    """Bare step times of every setting (and the baseline), taken in turns: --rounds rounds of
    --round-steps steps each, medians reported."""
    with tempfile.TemporaryDirectory() as run_dir:
        steps = {}
        for setting in args.settings.split(","):
            steps[f"project/{setting}"], _ = project_step(model, args, setting, Path(run_dir) / setting)
        if not args.no_baseline:
            steps["baseline"] = baseline_step(model, args, device)
        for step in steps.values():  # warm-up: compilation, oneDNN primitive caches
            for _ in range(3):
                step()
        times = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                sync(device)
                start = time.perf_counter()
                for _ in range(args.round_steps):
                    step()
                sync(device)
                times[name].append((time.perf_counter() - start) / args.round_steps)
    rows = []
    for name, seconds in times.items():
        step_s = statistics.median(seconds)
        rows.append({"loop": name, "model": model, "step_ms": 1e3 * step_s,
                     "images_per_s": args.batch / step_s,
                     "step_ms_rounds": [round(1e3 * s, 1) for s in seconds]})  # fmt: skip
    if "baseline" in times:
        for row in rows[:-1]:
            row["speedup_vs_baseline"] = rows[-1]["step_ms"] / row["step_ms"]
    return rows


def _side_by_side_job(model, args, setting, threads, barrier, results) -> None:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run_dir:
        step, device = project_step(model, args, setting, Path(run_dir))
        for _ in range(3):
            step()
        barrier.wait()
        start = time.perf_counter()
        for _ in range(args.round_steps):
            step()
        sync(device)
        results.put(time.perf_counter() - start)


def time_side_by_side(model: str, args) -> list[dict]:
    """Throughput of 1 job x T threads against N jobs x T/N threads at once, in turns for --rounds rounds."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    setting = args.settings.split(",")[0]
    total = args.threads or torch.get_num_threads()
    arrangements = [(1, total), (args.side_by_side, max(1, total // args.side_by_side))]
    rates = {arrangement: [] for arrangement in arrangements}
    for _ in range(args.rounds):
        for jobs, threads in arrangements:
            barrier, results = context.Barrier(jobs), context.Queue()
            job = (model, args, setting, threads, barrier, results)
            workers = [context.Process(target=_side_by_side_job, args=job) for _ in range(jobs)]
            for worker in workers:
                worker.start()
            seconds = [results.get() for _ in workers]
            for worker in workers:
                worker.join()
            rates[(jobs, threads)].append(jobs * args.round_steps * args.batch / max(seconds))
    rows = []
    for (jobs, threads), values in rates.items():
        rate = statistics.median(values)
        rows.append({"loop": f"project/{setting} {jobs} job(s) x {threads} thread(s)", "model": model,
                     "step_ms": 1e3 * jobs * args.batch / rate, "images_per_s": rate,
                     "images_per_s_rounds": [round(v, 1) for v in values]})  # fmt: skip
    rows[1]["speedup_vs_one_job"] = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    return rows


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--side-by-side", type=int, metavar="N",
                        help="throughput of N jobs at once against one job on all the threads")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="turns taken")
    parser.add_argument("--round-steps", type=int, default=5, help="steps timed per turn")
    args = parser.parse_args(argv)
    device = device_for(args)
    rows = []
    for model in args.models.split(","):
        if args.side_by_side:
            rows += print_rows(time_side_by_side(model, args))
        else:
            rows += print_rows(time_steps_interleaved(model, args, device))
    write_report(args, device, rows)


if __name__ == "__main__":
    main()
