"""Reading runs back: where they are, what they are, and what they logged.

A run is a directory holding TensorBoard event files or a `metrics.json` (the final summary); a sweep's
`aggregate/` folder (analysis/aggregate.py) is not one. A run still going, killed, or with a damaged file is
named in a warning and read as far as it can be, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..config import model_name, parse_model_name

log = logging.getLogger("resnet_train")

RUN_INTERNALS = {"checkpoints", ".hydra", ".submitit"}  # folders inside a run that never hold another run
AGGREGATE_DIR = "aggregate"  # a sweep's mean-over-seeds curves (analysis/aggregate.py): not a run
EVENTS = "events.out.tfevents.*"  # TensorBoard's event file names

Curve = list[tuple[int, float]]  # (iteration, value), sorted by iteration


@dataclass
class Run:
    """One run directory and what could be read from it."""

    path: Path
    model: str  # the paper's name, "resnet56" / "plain20", or the directory name if nothing says
    residual: bool | None = None
    depth: int | None = None
    shortcut: str | None = None  # "A", "B", "C"; None for a plain net or when unknown
    dataset: str | None = None
    seed: int | None = None
    metrics: dict | None = None  # metrics.json, None while the run is going (or if it failed)
    config: dict | None = None  # the stored config (.hydra/config.yaml, else the checkpoint's), plain values
    curves: dict[str, Curve] = field(default_factory=dict)  # TensorBoard tag -> points

    @property
    def label(self) -> str:
        """The paper's way of writing the name: "ResNet-56", "plain-20"."""
        return display_name(self.model, self.residual, self.depth)

    @property
    def iterations(self) -> int | None:
        """metrics.json's iterations, else the last iteration its curves logged."""
        if self.metrics and isinstance(self.metrics.get("iterations"), int):
            return self.metrics["iterations"]
        return max((curve[-1][0] for curve in self.curves.values() if curve), default=None)

    @property
    def precision(self) -> str | None:
        """metrics.json's resolved precision, else the config's; None when nothing says."""
        if self.metrics and isinstance(self.metrics.get("precision"), str):
            return self.metrics["precision"]
        configured = ((self.config or {}).get("trainer") or {}).get("precision")
        return None if configured is None else str(configured)


def display_name(model: str, residual: bool | None, depth: int | None) -> str:
    if residual is None or depth is None:
        return model
    return f"ResNet-{depth}" if residual else f"plain-{depth}"


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory at or below `paths`, sorted, without duplicates; FileNotFoundError for a path
    that is not a directory."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a directory")
        for directory, subdirs, files in os.walk(path, followlinks=False):
            here = Path(directory)
            if "metrics.json" in files or any(here.glob(EVENTS)):
                found.add(here.resolve())
                subdirs.clear()  # a run does not nest another run
            else:
                subdirs[:] = sorted(
                    d for d in subdirs
                    if d not in RUN_INTERNALS and (d != AGGREGATE_DIR or stranger_in_aggregate(here / d))
                )  # fmt: skip
    return sorted(found)


def stranger_in_aggregate(folder: Path) -> Path | None:
    """A file in `folder` other than event files, if any: an `aggregate/` folder holding one is not
    `resnet-report --tensorboard`'s and is read like any other."""
    return next((p for p in folder.rglob("*") if p.is_file() and not p.match(EVENTS)), None)


def read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None (with a warning if the file exists but cannot be read)."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        log.warning("run %s: cannot read metrics.json (%s); treating the run as unfinished", run_dir, error)
        return None
    if not isinstance(data, dict):
        log.warning("run %s: metrics.json does not hold an object; treating the run as unfinished", run_dir)
        return None
    return data


def read_run_config(run_dir: Path) -> dict | None:
    """The run's stored config as a plain dict: .hydra/config.yaml, else its last checkpoint's (a run
    started without Hydra); None if neither can be read."""
    path, checkpoint = run_dir / ".hydra" / "config.yaml", run_dir / "checkpoints" / "last.pt"
    if path.is_file():
        from omegaconf import OmegaConf

        try:
            config = OmegaConf.to_container(OmegaConf.load(path))
        except Exception as error:  # any YAML or OmegaConf error: the file is damaged
            log.warning("run %s: cannot read .hydra/config.yaml (%s)", run_dir, error)
            return None
    elif checkpoint.is_file():
        from ..engine.checkpoint import CheckpointError, load_checkpoint

        try:
            config = load_checkpoint(checkpoint).get("config")
        except CheckpointError as error:
            log.warning("run %s: cannot read the config of its checkpoint (%s)", run_dir, error)
            return None
    else:
        return None
    return config if isinstance(config, dict) else None


def read_curves(run_dir: Path) -> dict[str, Curve]:
    """Every scalar in the run's TensorBoard events, tag -> [(iteration, value)], sorted by iteration.

    All event files are read (a resumed run may have several); an iteration logged twice keeps the later
    value; a file cut short (a run still writing, or killed) gives the points before the cut.
    """
    files = sorted(run_dir.glob(EVENTS))
    if not files:
        log.warning("run %s: no TensorBoard events", run_dir)
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        # size_guidance 0 keeps every point (the default samples 10,000 per tag); one folder, no subfolders.
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        curves = {}
        for tag in events.Tags()["scalars"]:
            by_step = {event.step: float(event.value) for event in events.Scalars(tag)}
            curves[tag] = sorted(by_step.items())
    except Exception as error:  # the reader's errors for damaged data are not one documented type
        log.warning("run %s: cannot read its TensorBoard events (%s)", run_dir, error)
        return {}
    if not curves:
        log.warning("run %s: its TensorBoard events hold no scalars yet", run_dir)
    return curves


def _from_config(config: dict | None) -> dict:
    """The identifying fields of a run, from its stored config (enum values are stored by name)."""
    if not config:
        return {}
    model, data, trainer = config.get("model") or {}, config.get("data") or {}, config.get("trainer") or {}
    found = {}
    if isinstance(model.get("residual"), bool) and isinstance(model.get("depth"), int):
        found.update(residual=model["residual"], depth=model["depth"])
        found["model"] = model_name(model["residual"], model["depth"])
        found["shortcut"] = str(model["shortcut"]) if model["residual"] and model.get("shortcut") else None
    if data.get("name") is not None:
        found["dataset"] = str(data["name"])
    if isinstance(trainer.get("seed"), int):
        found["seed"] = trainer["seed"]
    return found


def _from_metrics(metrics: dict | None) -> dict:
    if not metrics:
        return {}
    found = {}
    model, depth = metrics.get("model"), metrics.get("depth")
    if isinstance(model, str):
        found["model"] = model
        with contextlib.suppress(ValueError):  # a name of another kind says nothing about shortcuts
            found["residual"] = parse_model_name(model)[0]
    if isinstance(depth, int):
        found["depth"] = depth
    return found | {key: metrics[key] for key in ("shortcut", "dataset", "seed") if key in metrics}


def load_run(run_dir: Path, *, curves: bool = True) -> Run:
    """Read one run: its identity from metrics.json, else its stored config, else the directory name."""
    run_dir = Path(run_dir)
    metrics, config = read_metrics(run_dir), read_run_config(run_dir)
    fields = {"model": run_dir.name, **_from_config(config), **_from_metrics(metrics)}
    return Run(
        path=run_dir, metrics=metrics, config=config, curves=read_curves(run_dir) if curves else {}, **fields
    )
