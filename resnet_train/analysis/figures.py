"""The paper's figures from runs read back by `runs.py`: Fig. 4 / Fig. 6 style error curves and Fig. 7 style
layer responses. Built on `matplotlib.figure.Figure` without pyplot: no global backend or figure state, and
`savefig` picks the format (PNG, SVG, PDF, ...) from the file name's extension.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from matplotlib.colors import TABLEAU_COLORS
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..engine.logger import TRAIN_ERROR, eval_tags
from .groups import BAND, Group, band, comparable, mixed_settings, precision_note, seed_groups
from .runs import Run

log = logging.getLogger("resnet_train")

EVAL_TAGS = (eval_tags("test")[0], eval_tags("val")[0])  # the bold curve: test error, else validation error
ITERATION_UNIT = 1e4  # the paper's x axis is "iter. (1e4)"
COLOURS = list(TABLEAU_COLORS.values())  # matplotlib's ten "tab10" colours, its default cycle


def _colour_key(group: Group) -> str:
    """The depth with what else names the group ("20", "34 B", "56 (optim.lr=0.05)"), so plain-20 and
    ResNet-20 share a colour across the two panels, as in the paper's figures."""
    run = group.first
    depth = str(run.depth) if run.depth is not None else run.model
    return depth + group.name[len(run.label) :]


def _panels(items: Sequence) -> list[tuple[str, list]]:
    """Plain nets and ResNets (runs or groups of runs), each in a panel when both are present."""
    plain = [item for item in items if item.residual is False]
    residual = [item for item in items if item.residual is not False]
    if plain and residual:
        return [("plain networks", plain), ("ResNets", residual)]
    return [("plain networks" if plain else "", plain or residual)]


def _eval_tag(run: Run) -> str | None:
    return next((tag for tag in EVAL_TAGS if tag in run.curves), None)


def _draw_band(ax, group: Group, tag: str, style: str, colour: str, linewidth: float, x_unit: float) -> None:
    """The mean over the group's seeds as a line, their min-max as a shaded band (one seed: its line)."""
    points = band([run.curves[tag] for run in group.runs if tag in run.curves])
    if not points:
        log.warning("%s: no iteration of %s was logged by all its runs; not drawn", group.name, tag)
        return
    steps, means, lows, highs = zip(*points)
    x = [step / x_unit for step in steps]
    marker = "o" if len(steps) == 1 else None  # one point so far: a dot (a line needs two)
    ax.plot(x, [100 * v for v in means], style, color=colour, linewidth=linewidth, marker=marker)
    if any(low != high for low, high in zip(lows, highs)):
        ax.fill_between(x, [100 * v for v in lows], [100 * v for v in highs], color=colour, alpha=0.2,
                        linewidth=0)  # fmt: skip


def plot_error_curves(
    runs: Sequence[Run], out: str | Path, *, title: str | None = None, ymax: float | None = None
) -> Path:
    """Save `error_figure` to `out` and return the path; ValueError if no run has a curve."""
    return _save(error_figure(runs, title=title, ymax=ymax), out)


def error_figure(runs: Sequence[Run], *, title: str | None = None, ymax: float | None = None) -> Figure:
    """The runs' error curves (Fig. 4 / 6): one panel for plain nets and one for ResNets, on one y range.

    Colour = net, training error dashed, test error bold. The seeds of one experiment (analysis/groups.py)
    are one curve: their mean, with a min-max band and n in the legend; the caption says the precision and
    what the band is. Runs without an error curve, finished ones without final errors and short seeds are
    left out with a warning, as are settings besides the net that differ. ValueError if no run has a curve.
    """
    drawable = []
    for run in comparable(runs):
        if TRAIN_ERROR in run.curves or _eval_tag(run):
            drawable.append(run)
        else:
            log.warning("run %s: no error curves to draw; left out of the figure", run.path)
    if not drawable:
        raise ValueError("none of the runs has an error curve to draw")
    groups = seed_groups(drawable)
    mixed = mixed_settings([group.settings for group in groups])
    if mixed:
        log.warning("%s", mixed)
    colour_keys = list(dict.fromkeys(_colour_key(group) for group in groups))
    colour_of = {key: COLOURS[index % len(COLOURS)] for index, key in enumerate(colour_keys)}
    splits = sorted({_eval_tag(run).split("/")[1] for run in drawable if _eval_tag(run)}, reverse=True)
    eval_label = " / ".join(splits or ["test"]) + " error"
    seeded = any(len(group.runs) > 1 for group in groups)
    keys = [
        Line2D([], [], color="black", linestyle="--", linewidth=0.9, label="training error"),
        Line2D([], [], color="black", linestyle="-", linewidth=2.2, label=eval_label),
    ]
    if seeded:
        keys.append(Patch(color="black", alpha=0.2, label=f"band: {BAND}"))
    # The paper's "iter. (1e4)" once a run reaches 1e4 iterations; plain iterations below (not 0.0025 units).
    longest = max(step for run in drawable for points in run.curves.values() for step, _ in points)
    x_unit, x_label = (ITERATION_UNIT, "iter. (1e4)") if longest >= ITERATION_UNIT else (1.0, "iter.")

    panels = _panels(groups)
    figure = Figure(figsize=(6.0 * len(panels), 4.5), layout="constrained")
    # sharey: plain nets and ResNets are read against one error scale, as in the paper's Fig. 4 and 6.
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (panel_title, panel_groups) in zip(axes, panels):
        nets = []  # one legend entry per net, in its colour, with its seed count
        for group in panel_groups:
            colour = colour_of[_colour_key(group)]
            n = len(group.runs)
            nets.append(Patch(color=colour, label=group.name + (f" (n={n})" if n > 1 else "")))
            _draw_band(ax, group, TRAIN_ERROR, "--", colour, 0.9, x_unit)  # training error dashed, thin
            eval_tag = next((_eval_tag(run) for run in group.runs if _eval_tag(run)), None)
            if eval_tag:  # test (or validation) error bold
                _draw_band(ax, group, eval_tag, "-", colour, 2.2, x_unit)
        ax.set(xlabel=x_label, ylabel="error (%)", xlim=(0, None), title=panel_title)
        ax.grid(True, alpha=0.3)
        ax.legend(handles=[*nets, *keys], fontsize="small")
    axes[0].set_ylim(bottom=0, top=ymax)  # shared by every panel
    caption = precision_note(drawable) + (f"; lines: mean over seeds, band: {BAND}" if seeded else "")
    figure.suptitle(f"{title}\n{caption}" if title else caption)
    return figure


def plot_responses(results: Sequence[dict], out: str | Path) -> Path:
    """Fig. 7: each result's (`ResponseResult.as_dict()`) layer std by layer index (top) and sorted by
    magnitude (bottom)."""
    figure = Figure(figsize=(7.0, 7.0), layout="constrained")
    top, bottom = figure.subplots(2, 1)
    for index, result in enumerate(results):
        colour = COLOURS[index % len(COLOURS)]
        stds = [layer["std"] for layer in result["layers"]]
        style = "--" if result.get("residual") is False else "-"
        for ax, values in ((top, stds), (bottom, sorted(stds, reverse=True))):
            ax.plot(range(1, len(stds) + 1), values, style, color=colour, label=result["label"])
    for ax, order in ((top, "original"), (bottom, "sorted by magnitude")):
        ax.set(xlabel=f"layer index ({order})", ylabel="std", xlim=(0, None), ylim=(0, None))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return _save(figure, out)


def _save(figure: Figure, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150)  # the format follows the extension (png, svg, pdf, ...)
    return out
