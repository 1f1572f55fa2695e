"""`resnet-report`: a Table 6-style table of finished runs, beside the paper's numbers.

    resnet-report SWEEP_DIR... [--format markdown|csv] [--out FILE] [--force]

Reads the metrics.json of every run at or below the given directories and prints one row per model, dataset
and shortcut option: layers, parameters, final training error and test error in percent, as mean ± sample
std over the runs (seeds) with the best (lowest) test error, and the paper's test error for that model where
it has one (CIFAR-10 numbers only for dataset cifar10, ImageNet ones only for imagenet). Runs without a
metrics.json (still going, or failed) are named in a warning and left out.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..analysis.runs import find_runs, load_run
from ..analysis.tables import summarize, to_csv, to_markdown
from ..errors import UserError
from ..logs import setup_logging
from .outputs import check_output, write_text

log = logging.getLogger("resnet_train")


def main(argv: Sequence[str] | None = None) -> int:
    # Our messages at INFO, other libraries' (TensorBoard's reader is chatty) only from WARNING.
    setup_logging(logging.WARNING)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(
        prog="resnet-report", description="A Table 6-style table of runs' metrics.json beside the paper's."
    )
    parser.add_argument("dirs", nargs="+", metavar="SWEEP_DIR", help="sweep folders or run directories")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown", help="default: markdown")
    parser.add_argument("--out", type=Path, default=None, help="write the table here instead of stdout")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)

    try:
        if args.out:
            check_output(args.out, force=args.force)
        run_dirs = find_runs(args.dirs)
    except UserError as error:
        log.error("%s", error)
        return error.exit_code
    except FileNotFoundError as error:
        log.error("%s", error)
        return 2
    runs = [load_run(path, curves=False) for path in run_dirs]
    for run in runs:
        if run.metrics is None:
            log.warning("run %s: no metrics.json (still running, or it failed); left out", run.path)
    rows = summarize(runs)
    if not rows:
        log.error("no finished runs (with metrics.json) under %s", ", ".join(args.dirs))
        return 2
    text = to_csv(rows) if args.format == "csv" else to_markdown(rows)
    if args.out:
        try:
            write_text(args.out, text)
        except UserError as error:
            log.error("%s", error)
            return error.exit_code
        log.info("%d row(s) from %d run(s) -> %s", len(rows), len(runs), args.out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
