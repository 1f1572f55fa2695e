"""`resnet-report`: a Table 6-style table of finished runs over seeds, beside the paper's numbers, and the
paper's claims with a verdict each.

    resnet-report SWEEP_DIR... [--format markdown|csv] [--out FILE] [--force] [--tensorboard]
    resnet-report --seeds FILE.csv [--out FILE] [--force]

One row per group of seeds (analysis/groups.py): layers, parameters, final training and test error in percent
as mean ± sample std over the n seeds, the best test error, and the paper's for that net and dataset
(analysis/tables.py); the footer says the precision and the settings the groups differ in besides the net.
The markdown ends with the paper's claims, each with a verdict (analysis/claims.py). Runs without a
metrics.json, without a finite final error, or shorter than their group's longest are left out with a warning.

`--tensorboard` also writes FIRST_DIR/aggregate/<group>/, each group's mean and min-max band over seeds
(analysis/aggregate.py). `--seeds FILE.csv` judges the claims on a table of per-seed errors instead (columns
net, seed, train_error, test_error in percent, optionally train_images and test_images).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..analysis import claims
from ..analysis.aggregate import write_aggregate
from ..analysis.groups import mixed_settings, precision_note, seed_groups
from ..analysis.runs import find_runs, load_run
from ..analysis.tables import claim_nets, seed_table, summarize, to_csv, to_markdown
from ..errors import UserError
from ..logs import setup_logging
from ..outputs import check_output, write_text

log = logging.getLogger("resnet_train")


def main(argv: Sequence[str] | None = None) -> int:
    # Our messages at INFO, other libraries' (TensorBoard's reader is chatty) only from WARNING.
    setup_logging(logging.WARNING)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(prog="resnet-report", description="A Table 6-style table of runs over "
                                     "seeds beside the paper's, and the paper's claims.")  # fmt: skip
    parser.add_argument("dirs", nargs="*", metavar="SWEEP_DIR", help="sweep folders or run directories")
    parser.add_argument("--seeds", type=Path, metavar="FILE.csv", help="the claims from per-seed errors")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown", help="default: markdown")
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--tensorboard", action="store_true", help="also write FIRST_DIR/aggregate/<group>/: "
                        "each group's mean and min-max band over seeds")  # fmt: skip
    args = parser.parse_args(argv)
    if bool(args.dirs) == bool(args.seeds):
        parser.error("give SWEEP_DIR... or --seeds FILE.csv")
    if args.seeds and (args.tensorboard or args.format == "csv"):
        parser.error("--seeds prints the claims in markdown; --tensorboard and --format csv need runs")

    try:
        if args.out:
            check_output(args.out, force=args.force)
        if args.seeds:
            return _emit(claims.to_markdown(seed_table(args.seeds)), args.out)
        run_dirs = find_runs(args.dirs)
    except (UserError, FileNotFoundError) as error:
        log.error("%s", error)
        return getattr(error, "exit_code", 2)
    runs = [load_run(path, curves=args.tensorboard) for path in run_dirs]
    for run in runs:
        if run.metrics is None:
            log.warning("run %s: no metrics.json (still running, or it failed); left out", run.path)
    rows = summarize(runs)
    if not rows:
        log.error("no finished runs (with metrics.json) under %s", ", ".join(args.dirs))
        return 2
    mixed = mixed_settings([row.settings for row in rows])
    if mixed:
        log.warning("%s", mixed)
    if args.format == "csv":
        text = to_csv(rows)
    else:
        precision = precision_note([run for run in runs if run.metrics is not None])
        notes = [precision[0].upper() + precision[1:], *([mixed] if mixed else [])]
        text = to_markdown(rows, notes) + "\n" + claims.to_markdown(claim_nets(rows))
    if args.tensorboard:
        try:  # every run with curves, finished or not: a sweep can be watched while it goes
            written = write_aggregate(seed_groups(runs), args.dirs[0])
        except (ValueError, OSError) as error:
            log.error("%s", error)
            return 2
        log.info("mean and min-max band over seeds -> %s (tensorboard --logdir %s)", written, args.dirs[0])
    try:
        return _emit(text, args.out)
    except UserError as error:
        log.error("%s", error)
        return error.exit_code


def _emit(text: str, out: Path | None) -> int:
    if out:
        write_text(out, text)
        log.info("-> %s", out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
