"""A sweep's wall clock from its jobs' timings (engine/probe.py). Plain arithmetic, no clock."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from .probe import Timing


def evaluations(start: int, max_iters: int, eval_every: int) -> int:
    """The evaluations a run makes after iteration `start`: at every multiple of `eval_every` and at the
    last iteration (engine/loop.py, `Trainer._after_step`)."""
    if start >= max_iters:
        return 0
    return max_iters // eval_every - start // eval_every + (1 if max_iters % eval_every else 0)


def job_seconds(timing: Timing, start: int, max_iters: int, eval_every: int) -> float:
    """Seconds of a job from iteration `start` to `max_iters`: setup, steps, evaluations. Checkpoint writes
    are left out (a fraction of a second each)."""
    steps = max(max_iters - start, 0)
    return timing.setup_s + steps * timing.step_s + evaluations(start, max_iters, eval_every) * timing.eval_s


def sweep_seconds(durations: Sequence[float], slots: int) -> float:
    """The wall clock of jobs run in order on `slots` workers, each starting on the first worker free."""
    free_at = [0.0] * max(1, min(slots, len(durations)))
    for duration in durations:
        heapq.heappush(free_at, heapq.heappop(free_at) + duration)
    return max(free_at, default=0.0)


def fit_iters(job_time: Callable[[int], float], budget_s: float, multiple: int = 1) -> int | None:
    """The largest multiple of `multiple` for which `job_time(iterations)` (growing with them) stays within
    `budget_s`; None if even `multiple` does not."""
    if job_time(multiple) > budget_s:
        return None
    low, high = 1, 2
    while job_time(high * multiple) <= budget_s:
        low, high = high, high * 2
    while high - low > 1:  # job_time(low * multiple) fits, job_time(high * multiple) does not
        middle = (low + high) // 2
        low, high = (middle, high) if job_time(middle * multiple) <= budget_s else (low, middle)
    return low * multiple
