"""Table 6-style summaries of runs' metrics.json over seeds (groups.py), beside the paper's numbers."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..config import override_text, parse_model_name
from ..errors import UserError
from .claims import Measurement, Net
from .groups import NET_KEYS, SHORTCUT, differing, seed_groups
from .runs import Run, display_name

# The paper's test errors in percent, by (dataset, model, shortcut option); plain nets have no option.
# Only a run of the same dataset, model and option is compared with a number.
PAPER_TEST_ERROR: dict[tuple[str, str, str | None], float] = {
    # Table 6: CIFAR-10 test error, option A. ResNet-110: best of 5 runs (mean 6.61 +- 0.16).
    ("cifar10", "resnet20", "A"): 8.75, ("cifar10", "resnet32", "A"): 7.51,
    ("cifar10", "resnet44", "A"): 7.17, ("cifar10", "resnet56", "A"): 6.97,
    ("cifar10", "resnet110", "A"): 6.43, ("cifar10", "resnet1202", "A"): 7.93,
    # Table 2: ImageNet validation top-1 error, 10-crop testing; the ResNets use option A.
    ("imagenet", "plain18", None): 27.94, ("imagenet", "plain34", None): 28.54,
    ("imagenet", "resnet18", "A"): 27.88, ("imagenet", "resnet34", "A"): 25.03,
    # Table 3: ImageNet validation top-1 error, 10-crop testing.
    ("imagenet", "resnet34", "B"): 24.52, ("imagenet", "resnet34", "C"): 24.19,
    ("imagenet", "resnet50", "B"): 22.85, ("imagenet", "resnet101", "B"): 21.75,
    ("imagenet", "resnet152", "B"): 21.43,
}  # fmt: skip
PAPER_SOURCE = {
    "cifar10": "Table 6",
    "imagenet": "Tables 2-3, 10-crop top-1 (a run's single-crop error is expected to be higher)",
}


def paper_test_error(dataset: str | None, model: str, shortcut: str | None) -> float | None:
    return PAPER_TEST_ERROR.get((dataset or "", model, shortcut if model.startswith("resnet") else None))


@dataclass
class Stats:
    """Mean, sample standard deviation (n - 1; None for one value) and best (min) of a set of errors."""

    values: list[float]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    @property
    def best(self) -> float | None:
        return min(self.values) if self.values else None


@dataclass
class Row:
    """One group of runs (seeds of one experiment on one net, analysis/groups.py). Errors are in percent."""

    model: str
    label: str  # the group's name: the net's, with what tells it apart from other groups of that net
    dataset: str | None
    shortcut: str | None
    depth: int | None
    residual: bool | None
    params: int | None
    iterations: list[int]
    seeds: list
    train_error: Stats
    test_error: Stats
    val_error: Stats
    paper: float | None
    settings: dict
    images: dict  # split -> images one run's final error counted, if known

    @property
    def runs(self) -> int:
        return len(self.seeds)


def _percent(values) -> list[float]:
    return [100.0 * v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _images(members: Sequence[Run], split: str) -> int | None:
    """The images a run's final `split` error counted (metrics.json), when every run agrees on it."""
    counts = {m.metrics.get(f"{split}_error_images") for m in members}
    return counts.pop() if len(counts) == 1 and isinstance(next(iter(counts)), int) else None


def summarize(runs: Sequence[Run]) -> list[Row]:
    """One row per group of finished runs (with metrics.json), as analysis/groups.py `seed_groups`."""
    rows = []
    for group in seed_groups([run for run in runs if run.metrics is not None]):
        first, members = group.first, group.runs
        params = {m.metrics.get("params") for m in members} - {None}
        rows.append(Row(
            model=first.model, label=group.name, dataset=first.dataset, shortcut=first.shortcut,
            depth=first.depth, residual=first.residual, params=params.pop() if len(params) == 1 else None,
            iterations=sorted({m.metrics.get("iterations") for m in members} - {None}), seeds=group.seeds,
            train_error=Stats(_percent(m.metrics.get("train_error") for m in members)),
            test_error=Stats(_percent(m.metrics.get("test_error") for m in members)),
            val_error=Stats(_percent(m.metrics.get("val_error") for m in members)),
            paper=paper_test_error(first.dataset, first.model, first.shortcut), settings=group.settings,
            images={split: _images(members, split) for split in ("train", "test", "val")},
        ))  # fmt: skip
    return rows


def _measurement(stats: Stats, images: int | None) -> Measurement | None:
    return Measurement(tuple(stats.values), images) if stats.values else None


def claim_nets(rows: Sequence[Row]) -> list[Net]:
    """The rows as analysis/claims.py's nets; a family is the rows whose settings agree on all but the net."""
    net_keys = (*NET_KEYS, SHORTCUT)
    family_of = [{k: v for k, v in r.settings.items() if k not in net_keys} for r in rows]
    differences = differing([f for f in family_of if "config" not in f])  # an unknown config: by its net
    nets = []
    for row, family in zip(rows, family_of):
        if row.residual is None or row.depth is None:
            continue  # a run whose net is unknown
        split = "test" if row.test_error.values else "val"
        nets.append(Net(
            name=row.label, residual=row.residual, depth=row.depth, shortcut=row.shortcut,
            family=", ".join(f"{key}={override_text(family.get(key))}" for key in differences),
            train=_measurement(row.train_error, row.images.get("train")),
            test=_measurement(getattr(row, f"{split}_error"), row.images.get(split)), test_split=split,
            paper=row.paper, paper_source=PAPER_SOURCE.get(row.dataset or "", "").split(",")[0],
            iterations=row.iterations[-1] if len(row.iterations) == 1 else None,
        ))  # fmt: skip
    return nets


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _mean_std(stats: Stats) -> str:
    if stats.mean is None:
        return "–"
    return _number(stats.mean) if stats.std is None else f"{stats.mean:.2f} ± {stats.std:.2f}"


def to_markdown(rows: Sequence[Row], notes: Sequence[str] = ()) -> str:
    """The table as GitHub markdown, errors in percent: mean ± std over the n runs (seeds) of each group, and
    the best run; `notes` are lines for its footer (the precision, mixed settings)."""
    header = [
        "model", "dataset", "shortcut", "layers", "params", "iterations", "n",
        "train error (%)", "test error (%)", "best test (%)", "paper test (%)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        low, high = (r.iterations[0], r.iterations[-1]) if r.iterations else (None, None)
        iterations = "" if low is None else f"{low:,}" if low == high else f"{low:,}–{high:,}"
        cells = [
            r.label, r.dataset or "", r.shortcut or "–", "" if r.depth is None else str(r.depth),
            "" if r.params is None else f"{r.params:,}", iterations, str(r.runs),
            _mean_std(r.train_error), _mean_std(r.test_error), _number(r.test_error.best) or "–",
            _number(r.paper) or "–",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    sources = [
        f"{name}: {source}" for name, source in PAPER_SOURCE.items() if any(r.dataset == name for r in rows)
    ]
    footer = (
        "\nErrors in percent; mean ± the sample standard deviation over the n runs (seeds) of one row. A row "
        "holds the runs whose configs agree on every setting but the seed and where files go."
    )
    if sources:
        footer += " Paper numbers: " + "; ".join(sources) + "."
    return "\n".join(lines) + "\n" + footer + "".join(f"\n\n{note}." for note in notes) + "\n"


CSV_FIELDS = [
    "model", "dataset", "shortcut", "depth", "params", "iterations", "runs",
    "train_error_mean", "train_error_std", "test_error_mean", "test_error_std", "test_error_best",
    "paper_test_error", "name", "seeds",
]  # fmt: skip
CSV_DIGITS = 3  # errors in percent to 0.001: finer than one image of a 10k test set (0.01%)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, CSV_DIGITS)


def to_csv(rows: Sequence[Row]) -> str:
    """The table as CSV, errors in percent rounded to CSV_DIGITS decimals (empty where there is none)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        iterations = r.iterations[-1] if len(r.iterations) == 1 else "/".join(map(str, r.iterations))
        writer.writerow({
            "model": r.model, "dataset": r.dataset, "shortcut": r.shortcut, "depth": r.depth,
            "params": r.params, "iterations": iterations, "runs": r.runs,
            "train_error_mean": _rounded(r.train_error.mean), "train_error_std": _rounded(r.train_error.std),
            "test_error_mean": _rounded(r.test_error.mean), "test_error_std": _rounded(r.test_error.std),
            "test_error_best": _rounded(r.test_error.best), "paper_test_error": r.paper, "name": r.label,
            "seeds": "/".join(map(str, r.seeds)),
        })  # fmt: skip
    return buffer.getvalue()


SEED_COLUMNS = ("net", "seed", "train_error", "test_error")  # and optionally train_images, test_images


def _cell(where: str, row: dict, column: str, kind: type):
    text = (row.get(column) or "").strip()
    try:
        value = kind(text)
    except ValueError:
        wanted = "a number" if kind is float else "a whole number"
        raise UserError(f"{where}: {column} {text!r} is not {wanted}") from None
    if kind is float and not 0 <= value <= 100:
        raise UserError(f"{where}: {column} {text} is not an error in percent (0 to 100)")
    return value


def seed_table(path: Path) -> list[Net]:
    """The nets of a CSV of per-seed errors in percent (`resnet-report --seeds`), one row per run: columns
    SEED_COLUMNS, and optionally the images each error counted (train_images, test_images). A missing
    column, an unknown net, a repeated seed or a cell that is not a number is a UserError naming the line."""
    try:
        with open(path, newline="") as file:
            rows = list(reader := csv.DictReader(file))
    except OSError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    missing = [column for column in SEED_COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)} (the columns: {', '.join(SEED_COLUMNS)})")
    seeds: dict[str, dict] = {}  # net -> seed -> row
    for line, row in enumerate(rows, start=2):
        where, name = f"{path}:{line}", (row["net"] or "").strip()
        try:
            parse_model_name(name)
        except ValueError as error:
            raise UserError(f"{where}: {error}") from None
        seed = _cell(where, row, "seed", int)
        if seed in seeds.setdefault(name, {}):
            raise UserError(f"{where}: {name} has seed {seed} twice")
        seeds[name][seed] = {
            column: _cell(where, row, column, float if column.endswith("error") else int)
            for column in ("train_error", "test_error", "train_images", "test_images")
            if column.endswith("error") or (row.get(column) or "").strip()
        }
    nets = []
    for name, runs in seeds.items():
        residual, depth = parse_model_name(name)
        train, test = (_seed_measurement(list(runs.values()), split) for split in ("train", "test"))
        nets.append(Net(display_name(name, residual, depth), residual, depth, train=train, test=test))
    return nets


def _seed_measurement(runs: list[dict], split: str) -> Measurement:
    counts = {run.get(f"{split}_images") for run in runs}
    images = counts.pop() if len(counts) == 1 else None
    return Measurement(tuple(run[f"{split}_error"] for run in runs), images)
