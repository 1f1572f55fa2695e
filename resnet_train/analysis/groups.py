"""Which runs are seeds of one experiment, and their curves as a mean with a band.

Two runs are seeds of one experiment when their stored configs agree on every setting that changes the
numbers: the whole config less `trainer.seed` and the keys whose schema role says they only place, watch,
save or execute the run (`trainer.max_iters` counts: a longer run ends elsewhere); `trainer.precision` is the
precision recorded in metrics.json. A group is named by its net ("ResNet-56"), plus the settings that tell
apart groups of one net ("ResNet-56 (optim.lr=0.05)", "ResNet-34 B" for a shortcut option).

The band over seeds is min-max: with two to five seeds it shows where every seed went, which a ±1 std band
(one std estimated from two or three values) would not.
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
    """Every setting of `run` that changes its numbers, flat (a key of another role counts where it steers
    this run: engine/rundir.py `steers`). A run without a stored config is known by its metrics.json's or
    directory's identity, and says so (`config: unknown`)."""
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
    """key -> its distinct values (in order of appearance), for every key not the same in all `settings`."""
    keys = dict.fromkeys(key for s in settings for key in s if key not in ignore)
    values = {key: list(dict.fromkeys(override_text(s.get(key)) for s in settings)) for key in keys}
    return {key: v for key, v in values.items() if len(v) > 1}


def group_runs(runs: Sequence[Run]) -> list[Group]:
    """The runs grouped by their experiment settings, plain before residual and by depth, each with its
    display name. Two runs of one group with the same seed are named in a warning."""
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
            paths = ", ".join(str(run.path) for run in group.runs)
            log.warning("%s: %d runs share seed %s (%s); they count as separate runs",
                        group.name, len(group.runs), ", ".join(map(str, repeated)), paths)  # fmt: skip
    return sorted(groups, key=lambda g: (g.first.dataset or "", g.residual is not False,
                                         g.first.depth or 1 << 30, g.name))  # fmt: skip


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def comparable(runs: Sequence[Run]) -> list[Run]:
    """`runs` less the finished ones without a finite training error and finite test or validation errors:
    those are named in one warning and left out of every mean, n, band and verdict."""
    kept, left_out = [], []
    for run in runs:
        m = run.metrics
        errors = [] if m is None else [m[k] for k in ("test_error", "val_error") if m.get(k) is not None]
        whole = m is None or (_finite(m.get("train_error")) and errors and all(map(_finite, errors)))
        (kept if whole else left_out).append(run)
    if left_out:
        log.warning("left out %s: metrics.json lacks a finite training and test (or validation) error",
                    ", ".join(str(run.path) for run in left_out))  # fmt: skip
    return kept


def equal_length(groups: Sequence[Group]) -> list[Group]:
    """Each group with only the runs of its longest run's length, so that a mean, band or test is over runs of
    one length; the others (a pre-empted seed not yet resumed, an unknown length) are named in a warning."""
    kept = []
    for group in groups:
        longest = max((run.iterations for run in group.runs if run.iterations is not None), default=None)
        short = [run for run in group.runs if run.iterations != longest]
        if short and longest is not None:
            log.warning("%s: left out %s: shorter than its seeds' %d iterations", group.name,
                        ", ".join(f"{run.path} (at {run.iterations})" for run in short), longest)  # fmt: skip
            group = replace(group, runs=[run for run in group.runs if run.iterations == longest])
        kept.append(group)
    return kept


def seed_groups(runs: Sequence[Run]) -> list[Group]:
    """The groups a table, band or verdict is over: `comparable` runs, grouped, cut by `equal_length`."""
    return equal_length(group_runs(comparable(runs)))


def _suffix(settings: dict, differences: dict[str, list]) -> str:
    """ " B" for a shortcut option, then " (key=value, ...)" for the other settings that differ."""
    suffix = f" {settings[SHORTCUT]}" if SHORTCUT in differences and settings.get(SHORTCUT) else ""
    named = [f"{key}={override_text(settings.get(key))}" for key in differences if key != SHORTCUT]
    if len(named) > NAMED_KEYS:
        named = [*named[:NAMED_KEYS], f"+{len(named) - NAMED_KEYS} more"]
    return suffix + (f" ({', '.join(named)})" if named else "")


def mixed_settings(settings: Sequence[dict]) -> str | None:
    """One line naming the settings besides the net in which groups differ, or None. Groups without a
    readable config are left out of the comparison and counted."""
    known = [s for s in settings if "config" not in s]
    unknown = len(settings) - len(known)
    differences = differing(known, ignore=(*NET_KEYS, SHORTCUT))
    listed = "; ".join(f"{key} ({', '.join(values)})" for key, values in differences.items())
    lines = [f"The runs differ in more than the net: {listed}"] if differences else []
    if unknown and known:
        lines.append(f"{unknown} group(s) of runs have no readable config and are compared by net alone")
    return "; ".join(lines) or None


def band(curves: Sequence[Curve]) -> list[tuple[int, float, float, float]]:
    """(iteration, mean, min, max) over `curves` at every iteration all of them logged: the mean of a
    changing set of seeds would jump where one of them stops."""
    if not curves:
        return []
    values = [dict(curve) for curve in curves]
    common = sorted(set(values[0]).intersection(*values[1:]))
    return [(step, statistics.fmean(v[step] for v in values), min(v[step] for v in values),
             max(v[step] for v in values)) for step in common]  # fmt: skip


def precision_note(runs: Sequence[Run]) -> str:
    """The runs' numerics: "precision fp32", or when mixed each with its run count ("MIXED precision: …")."""
    counts = Counter(run.precision or "unknown" for run in runs)
    if len(counts) == 1:
        return f"precision {next(iter(counts))}"
    listed = ", ".join(f"{name} ({count} run{'s' if count > 1 else ''})" for name, count in counts.items())
    return f"MIXED precision: {listed}; runs of different precisions are never grouped as seeds"
