"""`resnet-info`: the size and compute of the model configs, e.g. `resnet-info resnet20 resnet56 plain56`.

    resnet-info NAME... [--input-size N] [--cifar-input-size N] [--num-classes K] [--json]

NAME is a file of configs/model/. `--input-size` sets the ImageNet nets' input (default 224; they also run at
other sizes), `--cifar-input-size` the CIFAR nets' (default 32, the only size the paper defines them for,
Sec. 4.2), so one table can mix them. The class count defaults to the family's dataset's (10 or 1000).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import OmegaConf

from ..config import Family, ModelConfig, config_dir
from ..engine.restore import model_from_config
from ..models import count_macs, count_parameters
from ..models.resnet import NATURAL_INPUT_SIZE

NATURAL_NUM_CLASSES = {Family.cifar: 10, Family.imagenet: 1000}


def model_configs() -> dict[str, Path]:
    """The model group's configs by name, in natural order (plain20 before plain110)."""
    paths = sorted((Path(config_dir()) / "model").glob("*.yaml"),
                   key=lambda p: (p.stem.rstrip("0123456789"), len(p.stem), p.stem))  # fmt: skip
    return {path.stem: path for path in paths}


def describe(name: str, path: Path, input_sizes: dict[Family, int | None], num_classes: int | None) -> dict:
    """One model config, validated against the schema: its size and compute at its family's entry of
    `input_sizes` (None: the family's natural size)."""
    m = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(path))
    size = input_sizes.get(m.family) or NATURAL_INPUT_SIZE[m.family]  # None: not given
    with torch.device("meta"):  # shapes only: no memory for the weights and no time spent initialising them
        model = model_from_config(m, num_classes or NATURAL_NUM_CLASSES[m.family], size)
    return {
        "name": name, "family": m.family.value, "depth": m.depth,
        "shortcut": m.shortcut if m.residual else "none", "params": count_parameters(model),
        "macs": count_macs(model, size), "input_size": size,
    }  # fmt: skip


def scientific(value: int) -> str:
    """3 significant digits as the paper writes FLOPs: 1814073344 -> "1.81e9"."""
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def table(rows: list[dict]) -> str:
    header = ("name", "family", "depth", "shortcut", "params", "MACs", "input")
    lines = [header] + [
        (r["name"], r["family"], str(r["depth"]), r["shortcut"], f"{r['params']:,}", scientific(r["macs"]),
         f"{r['input_size']}x{r['input_size']}")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    left = {0, 1, 3}  # text columns left-aligned, numbers right-aligned
    return "\n".join("  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(line, widths)))
                      for line in lines)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resnet-info", description="Parameters and multiply-adds of model configs."
    )
    parser.add_argument("names", nargs="+", metavar="NAME",
                        help="a model config, e.g. resnet56, plain20, resnet50")  # fmt: skip
    parser.add_argument("--input-size", type=int, help="image side of the ImageNet nets (default 224)")
    parser.add_argument("--cifar-input-size", type=int, help="image side of the CIFAR nets (default 32)")
    parser.add_argument("--num-classes", type=int, help="classes (default: 10 CIFAR, 1000 ImageNet)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)

    values = {"--input-size": (args.input_size, 1), "--cifar-input-size": (args.cifar_input_size, 1),
              "--num-classes": (args.num_classes, 2)}  # fmt: skip
    wrong = [f"{option} {value} (must be >= {low})" for option, (value, low) in values.items()
             if value is not None and value < low]  # fmt: skip
    if wrong:
        print(f"resnet-info: out of range: {'; '.join(wrong)}", file=sys.stderr)
        return 2
    available = model_configs()
    unknown = [name for name in args.names if name not in available]
    if unknown:
        print(f"resnet-info: unknown model {', '.join(unknown)}; available: {', '.join(available)}",
              file=sys.stderr)  # fmt: skip
        return 2
    input_sizes = {Family.imagenet: args.input_size, Family.cifar: args.cifar_input_size}
    rows = [describe(name, available[name], input_sizes, args.num_classes) for name in args.names]
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
