"""`resnet-export`: take a trained net's weights out of a checkpoint, for use without resnet-train.

    resnet-export CHECKPOINT --format state_dict|torchvision --out FILE

`state_dict` writes the net's own state_dict (for `resnet_train.models.build_model(...)`, or use
`resnet_train.load_model(CHECKPOINT)`); `torchvision` writes it under torchvision's names for the nets it has
(models/export.py), refusing any other with the reason. Either way inputs are normalised as in training.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from ..errors import UserError
from ..logs import setup_logging
from ..models.export import NotExportable, to_torchvision, torchvision_arch
from ..outputs import atomic_output, check_output

log = logging.getLogger("resnet_train")


def export(checkpoint: Path, form: str, out: Path, force: bool = False) -> str:
    """Write the weights of `checkpoint` to `out` in `form` (outputs.py decides what may be replaced);
    returns the line that loads them again."""
    from ..engine.restore import restore

    check_output(out, inputs=[checkpoint], force=force)
    restored = restore(checkpoint)
    model, classes = restored.model, restored.model.fc.out_features
    if form == "torchvision":
        try:
            weights = to_torchvision(model)
        except NotExportable as error:
            raise UserError(f"{checkpoint}: {error}") from None
        usage = f"torchvision.models.{torchvision_arch(model)}(num_classes={classes})"
    else:
        weights = model.state_dict()
        m = restored.config.model
        usage = (
            f"resnet_train.models.build_model('{m.family.value}', {m.depth}, {m.residual}, {classes}, "
            f"shortcut='{m.shortcut}', block={m.block!r}, bottleneck_stride='{m.bottleneck_stride.value}', "
            f"stem='{m.stem.value}', input_size={restored.config.data.image_size})"
        )
    with atomic_output(out) as partial:
        torch.save(weights, partial)
    return f"{usage}.load_state_dict(torch.load('{out}'), strict=True)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="resnet-export",
        description="Write a resnet-train checkpoint's weights as a plain state_dict, or in torchvision's "
        "layout for the nets torchvision has (ImageNet stem, option B, v1.5 bottlenecks).",
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint file (a run's checkpoints/last.pt)")
    parser.add_argument("--format", choices=("state_dict", "torchvision"), default="state_dict")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (a new one, see --force)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        usage = export(args.checkpoint, args.format, args.out, args.force)
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)
    log.info("wrote %s; load it with: %s", args.out, usage)


if __name__ == "__main__":
    main()
