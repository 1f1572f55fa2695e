"""Which runs are seeds of one experiment, and their curves as a mean with a band.

Two runs are seeds of one experiment when their stored configs agree on every setting that changes the
numbers a run computes: the whole config less `trainer.seed` and the keys that only say where the files are,
how the run is watched, saved or executed (the schema's roles, which also decide the changes a resume
accepts; `trainer.max_iters` counts: a longer run ends elsewhere). `trainer.precision` counts as the
precision the run recorded in metrics.json.

A group is shown as its net's name ("ResNet-56"); where several groups share a net, each name adds the
settings that tell them apart ("ResNet-56 (optim.lr=0.05)", or "ResNet-34 B" for a shortcut option).

The band over seeds is min-max: with the two to five seeds a sweep has, it shows where every seed went,
which a ±1 std band (one std estimated from two or three values) would not.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import Counter
from dataclasses import dataclass, replace
from typing import Sequence

from ..config import Role, override_text, role_of
from ..engine.rundir import flat, steers
from .runs import Curve, Run

log = logging.getLogger("resnet_train")

NET_KEYS = ("model.depth", "model.residual")  # what the net's own name says
SHORTCUT = "model.shortcut"
NAMED_KEYS = 3  # settings spelled out in a group's name before "+N more"
BAND = "min-max over seeds"


def experiment_settings(run: Run) -> dict:
    """Every setting of `run` that changes its numbers, flat: its stored config less the seed and the keys
    whose schema role leaves the numbers alone (unless they steer this run: engine/rundir.py `steers`). A
    run without a stored config is known by the identity its metrics.json or directory gives, and says so
    (`config: unknown`)."""
    if run.config is None:
        return {
            "config": "unknown", "model": run.model, "data.name": run.dataset, SHORTCUT: run.shortcut,
            "trainer.precision": run.precision,
        }  # fmt: skip
    settings = flat(run.config)
    if run.precision is not None:
        settings["trainer.precision"] = run.precision
    if settings.get("model.residual") is False:
        settings.pop(SHORTCUT, None)  # a plain net has no shortcut to choose
    return {
        k: v for k, v in settings.items()
        if k != "trainer.seed" and (role_of(k) in (Role.experiment, Role.numbers) or steers(k, settings))
    }  # fmt: skip


@dataclass
class Group:
    """The runs (seeds) of one experiment on one net."""

    name: str
    settings: dict
    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def residual(self) -> bool | None:
        return self.first.residual

    @property
    def seeds(self) -> list:
        return [run.seed for run in self.runs]


def differing(settings: Sequence[dict], ignore: Sequence[str] = ()) -> dict[str, list]:
    """key -> the distinct values (in order of appearance) of every key whose value is not the same in all
    of `settings`."""
    keys = dict.fromkeys(key for s in settings for key in s)
    out = {}
    for key in keys:
        if key in ignore:
            continue
        values = list(dict.fromkeys(override_text(s.get(key)) for s in settings))
        if len(values) > 1:
            out[key] = values
    return out


def _sort_key(group: Group) -> tuple:
    run = group.first
    return (run.dataset or "", run.residual is not False, run.depth or 1 << 30, group.name)


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """The runs grouped by their experiment settings, sorted plain before residual and by depth, each with
    its display name. Two runs of one group with the same seed are named in a warning."""
    by_settings: dict[tuple, Group] = {}
    for run in runs:
        settings = experiment_settings(run)
        key = tuple(sorted((k, override_text(v)) for k, v in settings.items()))
        by_settings.setdefault(key, Group("", settings, [])).runs.append(run)
    groups = list(by_settings.values())
    by_label: dict[str, list[Group]] = {}
    for group in groups:
        by_label.setdefault(group.first.label, []).append(group)
    for label, same_net in by_label.items():
        differences = differing([g.settings for g in same_net])
        for group in same_net:
            group.name = label + _suffix(group.settings, differences)
    for group in groups:
        seeds = [seed for seed in group.seeds if seed is not None]
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:
            log.warning(
                "%s: %d runs share seed %s (%s); they count as separate runs",
                group.name, len(group.runs), ", ".join(map(str, repeated)),
                ", ".join(str(run.path) for run in group.runs),
            )  # fmt: skip
    return sorted(groups, key=_sort_key)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def comparable(runs: Sequence[Run]) -> list[Run]:
    """`runs` less the finished ones whose metrics.json lacks a finite training error and a finite test or
    validation error (or holds a non-finite one): those are named in one warning and left out of every mean,
    n, band and verdict."""
    kept, left_out = [], []
    for run in runs:
        m = run.metrics
        errors = [] if m is None else [m[k] for k in ("test_error", "val_error") if m.get(k) is not None]
        whole = m is None or (_finite(m.get("train_error")) and errors and all(map(_finite, errors)))
        (kept if whole else left_out).append(run)
    if left_out:
        log.warning(
            "left out %s: metrics.json lacks a finite training and test (or validation) error",
            ", ".join(str(run.path) for run in left_out),
        )
    return kept


def equal_length(groups: Sequence[Group]) -> list[Group]:
    """Each group with only the runs that reached its longest run's length, so that a mean, a band or a test
    is over runs of one length. Runs that stopped earlier (a pre-empted seed not yet resumed) or whose length
    is unknown are named in a warning and left out."""
    kept = []
    for group in groups:
        longest = max((run.iterations for run in group.runs if run.iterations is not None), default=None)
        short = [run for run in group.runs if run.iterations != longest]
        if short and longest is not None:
            log.warning(
                "%s: left out %s: shorter than its seeds' %d iterations",
                group.name, ", ".join(f"{run.path} (at {run.iterations})" for run in short), longest,
            )  # fmt: skip
            group = replace(group, runs=[run for run in group.runs if run.iterations == longest])
        kept.append(group)
    return kept


def seed_groups(runs: Sequence[Run]) -> list[Group]:
    """The groups of `runs` that a table, a band or a verdict is over: runs with their final errors
    (`comparable`), grouped, each group's seeds of one length (`equal_length`)."""
    return equal_length(group_runs(comparable(runs)))


def _suffix(settings: dict, differences: dict[str, list]) -> str:
    """ " B" for a shortcut option, then " (key=value, ...)" for the other settings that tell apart groups
    of one net."""
    suffix = f" {settings[SHORTCUT]}" if SHORTCUT in differences and settings.get(SHORTCUT) else ""
    named = [f"{key}={override_text(settings.get(key))}" for key in differences if key != SHORTCUT]
    if len(named) > NAMED_KEYS:
        named = [*named[:NAMED_KEYS], f"+{len(named) - NAMED_KEYS} more"]
    return suffix + (f" ({', '.join(named)})" if named else "")


def mixed_settings(settings: Sequence[dict]) -> str | None:
    """One line naming the settings besides the net (depth, plain or residual, shortcut option) in which
    groups of runs differ, or None when they differ in the net alone. Groups without a readable config
    (named when it was read: analysis/runs.py) are left out of the comparison and counted."""
    known = [s for s in settings if "config" not in s]
    unknown = len(settings) - len(known)
    differences = differing(known, ignore=(*NET_KEYS, SHORTCUT))
    listed = "; ".join(f"{key} ({', '.join(values)})" for key, values in differences.items())
    lines = [f"The runs differ in more than the net: {listed}"] if differences else []
    if unknown and known:
        lines.append(f"{unknown} group(s) of runs have no readable config and are compared by net alone")
    return "; ".join(lines) or None


def band(curves: Sequence[Curve]) -> list[tuple[int, float, float, float]]:
    """(iteration, mean, min, max) over `curves` at every iteration that all of them logged: the mean of a
    changing set of seeds would jump where one of them stops."""
    if not curves:
        return []
    values = [dict(curve) for curve in curves]
    common = sorted(set(values[0]).intersection(*values[1:]))
    return [
        (step, statistics.fmean(v[step] for v in values), min(v[step] for v in values),
         max(v[step] for v in values))
        for step in common
    ]  # fmt: skip


def precision_note(runs: Sequence[Run]) -> str:
    """The numerics of `runs` in a few words: "precision fp32", or every precision with its run count when
    they are mixed ("MIXED precision: fp32 (4 runs), bf16 (2 runs)")."""
    counts = Counter(run.precision or "unknown" for run in runs)
    if len(counts) == 1:
        return f"precision {next(iter(counts))}"
    listed = ", ".join(f"{name} ({count} run{'s' if count > 1 else ''})" for name, count in counts.items())
    return f"MIXED precision: {listed}; runs of different precisions are never grouped as seeds"
