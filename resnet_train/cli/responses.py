"""`resnet-responses`: Fig. 7, the standard deviation of each 3x3 layer's response for trained checkpoints.

    resnet-responses CHECKPOINT... [--data-root DIR] [--split test|val] [--max-images N] [--batch-size N]
                     [--device cpu|cuda] [--out FILE] [--json FILE] [--csv FILE] [--force]

Each checkpoint's net is rebuilt from its stored config and run in eval mode over the test set its run was
tested on, normalised as in training; the std is over all elements of each response (after BN, before the
addition and the ReLU: analysis/responses.py). The figure shows the stds by layer index and sorted by
magnitude; --json and --csv write the numbers (outputs.py); with no output option they are printed as CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from ..analysis.figures import plot_responses
from ..analysis.responses import checkpoint_responses
from ..engine.checkpoint import load_checkpoint
from ..errors import UserError
from ..logs import setup_logging
from ..outputs import atomic_output, check_output, figure_path, write_text

log = logging.getLogger("resnet_train")


def to_csv(results: list[dict]) -> str:
    """One row per layer of every checkpoint: its index in layer order and its rank by magnitude."""
    buffer = io.StringIO()
    fields = ["source", "model", "dataset", "images", "index", "name", "std", "rank"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for result in results:
        by_size = sorted(result["layers"], key=lambda layer: -layer["std"])
        rank = {layer["index"]: position + 1 for position, layer in enumerate(by_size)}
        for layer in result["layers"]:
            ids = {key: result[key] for key in ("source", "model", "dataset", "images")}
            writer.writerow({**ids, **layer, "rank": rank[layer["index"]]})
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    # Our messages at INFO, other libraries' (TensorBoard's reader is chatty) only from WARNING.
    setup_logging(logging.WARNING)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(
        prog="resnet-responses", description="Fig. 7: std of each 3x3 layer's response, after BN."
    )
    parser.add_argument("checkpoints", nargs="+", type=Path, metavar="CHECKPOINT",
                        help="e.g. RUN/checkpoints/last.pt")  # fmt: skip
    parser.add_argument("--data-root", help="where the data is, instead of the root stored in the checkpoint")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="default: test (as the paper)")  # fmt: skip
    parser.add_argument("--max-images", type=int, help="use only the first N images of the split")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--out", type=Path, help="the figure (png, svg, pdf by extension)")
    parser.add_argument("--json", type=Path, help="write the numbers as JSON")
    parser.add_argument("--csv", type=Path, help="write the numbers as CSV")
    parser.add_argument("--force", action="store_true", help="replace --out, --json or --csv if it exists")
    args = parser.parse_args(argv)
    results = []
    if args.out is not None:
        args.out = figure_path(args.out)
    try:
        for option, out in {"--out": args.out, "--json": args.json, "--csv": args.csv}.items():
            if out is not None:
                check_output(out, inputs=args.checkpoints, force=args.force, option=option)
        for path in args.checkpoints:
            checkpoint = load_checkpoint(path)
            result = checkpoint_responses(
                checkpoint, str(path), data_root=args.data_root, split=args.split, max_images=args.max_images,
                batch_size=args.batch_size, device=args.device,
            )  # fmt: skip
            log.info("%s (%s): %d layers over %d images",
                     result.label, path, len(result.layers), result.images)  # fmt: skip
            results.append(result.as_dict())
    except (UserError, ValueError, RuntimeError) as error:  # bad file, missing data, weights that do not fit
        # The data's messages name the config key; this tool's way to set it is --data-root.
        log.error("%s", str(error).replace("data.root=DIR", "--data-root DIR"))
        return 2
    try:
        if args.json:
            write_text(args.json, json.dumps(results, indent=2) + "\n")
        if args.csv:
            write_text(args.csv, to_csv(results))
        if args.out:
            with atomic_output(args.out) as partial:
                plot_responses(results, partial)
            log.info("figure -> %s", args.out)
    except (UserError, ValueError) as error:  # ValueError: a file format matplotlib does not know
        log.error("%s", error)
        return 2
    if not (args.json or args.csv or args.out):
        sys.stdout.write(to_csv(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
