"""`resnet-plot`: the paper's error-curve figure (Fig. 4 / Fig. 6 style) from runs' TensorBoard events.

    resnet-plot RUN_OR_SWEEP_DIR... [--out FILE] [--force] [--title TEXT] [--ymax PERCENT]

Every run at or below the given directories is drawn (analysis/figures.py `error_figure`): training error
dashed, test (else validation) error bold, plain nets and ResNets in two panels on one y range, the seeds of
one experiment as their mean with a min-max band. Runs still going are drawn as far as they got; a run whose
events are missing or damaged is named in a warning and drawn as far as it can be read, or left out.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..analysis.figures import plot_error_curves
from ..analysis.runs import find_runs, load_run
from ..errors import UserError
from ..logs import setup_logging
from ..outputs import atomic_output, check_output, figure_path

log = logging.getLogger("resnet_train")


def main(argv: Sequence[str] | None = None) -> int:
    # Our messages at INFO, other libraries' (TensorBoard's reader is chatty) only from WARNING.
    setup_logging(logging.WARNING)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(
        prog="resnet-plot", description="The paper's error-curve figure from runs' TensorBoard events."
    )
    parser.add_argument("dirs", nargs="+", metavar="RUN_OR_SWEEP_DIR",
                        help="run directories or sweep folders")  # fmt: skip
    parser.add_argument("--out", type=Path, help="the figure; its extension picks the format (png, svg, pdf; "
                        "none: .png is added); default: FIRST_DIR/errors.png")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace the figure if it exists")
    parser.add_argument("--title", help="a title above the panels")
    parser.add_argument("--ymax", type=float,
                        help="top of the error axis in percent (the paper's Fig. 6: 20)")  # fmt: skip
    args = parser.parse_args(argv)
    out = figure_path(args.out or Path(args.dirs[0]) / "errors.png")
    try:
        check_output(out, force=args.force)
        run_dirs = find_runs(args.dirs)
    except (UserError, FileNotFoundError) as error:
        log.error("%s", error)
        return getattr(error, "exit_code", 2)
    if not run_dirs:
        log.error("no runs (folders with TensorBoard events or metrics.json) under %s", ", ".join(args.dirs))
        return 2
    runs = [load_run(path) for path in run_dirs]
    try:
        with atomic_output(out) as partial:
            plot_error_curves(runs, partial, title=args.title, ymax=args.ymax)
    except (ValueError, UserError) as error:  # ValueError: no drawable run, or a format matplotlib lacks
        log.error("%s", error)
        return getattr(error, "exit_code", 2)
    log.info("%d run(s) -> %s", len(runs), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
