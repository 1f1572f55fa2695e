"""TensorBoard runs of the mean over seeds, so that `tensorboard --logdir SWEEP` compares nets.

TensorBoard draws one line per run and cannot average runs. This writes `SWEEP/aggregate/<group>/`, one run
per group of seeds (analysis/groups.py), holding for every `error/<split>` curve of its runs the curves
`error/<split>/mean`, `/min` and `/max` at every iteration all the group's seeds logged, and a Custom Scalars
"Margin" chart of each mean with its band. Writing replaces the whole folder, so re-running never doubles a
point or keeps a group that is gone; the readers (analysis/runs.py) never take it for a run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Sequence

from .groups import Group, band
from .runs import AGGREGATE_DIR, stranger_in_aggregate

EDGES = ("mean", "min", "max")


def _folder_name(name: str) -> str:
    """A group's name as a folder: "ResNet-56 (optim.lr=0.05)" -> "ResNet-56_optim.lr=0.05"."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", name).strip("_") or "group"


def write_aggregate(groups: Sequence[Group], sweep: str | Path) -> Path:
    """Write `sweep/aggregate/<group>/` (replacing the folder) and return its path; ValueError if the
    folder exists and holds anything but the event files this writes."""
    from torch.utils.tensorboard import SummaryWriter

    out = Path(sweep) / AGGREGATE_DIR
    if out.exists():
        stranger = stranger_in_aggregate(out)
        if stranger:
            raise ValueError(
                f"{out} holds files other than TensorBoard events ({stranger}); it is not an aggregate "
                f"written by resnet-report, so it is left alone: move it away"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names: set[str] = set()
    for group in groups:
        tags = sorted({tag for run in group.runs for tag in run.curves if tag.startswith("error/")})
        if not tags:
            continue
        name = _folder_name(group.name)
        while name in names:  # two long names cut to the same "+N more"
            name += "_"
        names.add(name)
        writer = SummaryWriter(str(out / name))
        charts = {tag: ["Margin", [f"{tag}/{edge}" for edge in EDGES]] for tag in tags}
        writer.add_custom_scalars({"error: mean over seeds, min-max band": charts})
        for tag in tags:
            for step, *values in band([run.curves[tag] for run in group.runs if tag in run.curves]):
                for edge, value in zip(EDGES, values):
                    writer.add_scalar(f"{tag}/{edge}", value, step)
        writer.close()
    return out
