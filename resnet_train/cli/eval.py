"""`resnet-eval`: evaluate a checkpoint on its dataset's test split with the paper's testing protocols.

    resnet-eval CHECKPOINT [key=value ...] [--out FILE] [--force]

The config is the checkpoint's; `key=value` overrides change it (`data.root=DIR`, `trainer.device=cpu`)
and set this tool's options `eval.crops=center|ten|multiscale` and `eval.out=FILE`, validated against the
training schema. Prints the errors as JSON on stdout and writes them to --out / eval.out (outputs.py).

The checkpoint carries its class names and input statistics, so nothing is recomputed from the training
set: streamed datasets (imagenet, imagefolder) are evaluated on the test split folder alone (imagenet:
val/), CIFAR on the original test images, centre view only (Sec. 4.2).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import Config, Crops, EvalConfig
from ..errors import UserError
from ..logs import setup_logging
from ..outputs import check_output, write_text

log = logging.getLogger("resnet_train")


@dataclass
class EvalSettings(Config):
    eval: EvalConfig = field(default_factory=EvalConfig)


def restore_for_eval(path: Path, overrides: list[str]):
    """The checkpoint at `path` restored with `overrides` and resnet-eval's own settings; a class count in
    the overrides that differs from the checkpoint's net is refused (the net's last layer decides)."""
    from ..engine.restore import restore

    restored = restore(path, overrides, schema=EvalSettings)
    wanted, predicted = restored.config.data.num_classes, restored.model.fc.out_features
    if wanted is not None and wanted != predicted:
        raise UserError(f"data.num_classes={wanted}, but the net in {path} predicts {predicted} classes; "
                        "leave data.num_classes out (the checkpoint's classes are used)")  # fmt: skip
    return restored


def evaluate_checkpoint(path: Path, restored) -> dict:
    """The errors of `restored` (`restore_for_eval` of the checkpoint at `path`) as a JSON-ready dict."""
    from ..data import build_eval_set
    from ..engine.distributed import World
    from ..engine.evaluate import evaluate
    from ..engine.run import Runtime
    from ..models import model_name

    settings = restored.config
    m, d, crops = settings.model, settings.data, settings.eval.crops
    rt = Runtime.resolve(settings.trainer, World())  # the training rule for the device and precision
    evals = build_eval_set(
        d, stats=restored.stats, classes=restored.classes, crops=crops,
        batch_size=settings.trainer.eval_batch_size_per_process, device=rt.device,
    )  # fmt: skip
    log.info("evaluating %s (%s views) on %d images of %s", path, crops.value, evals.images, d.name)
    result = evaluate(restored.model.to(rt.device), evals.batches, rt.device, rt.amp_dtype)
    return {
        "checkpoint": str(path), "model": model_name(m.residual, m.depth), "dataset": d.name, "split": "test",
        "folder": evals.folder, "iteration": restored.iteration, "crops": crops.value,
        "scales": list(d.test_scales) if crops is Crops.multiscale else None,
        "images": evals.images - evals.bad_images.count, "skipped_images": evals.bad_images.count,
        "top1_error": result.error, "top5_error": result.top5_error, "loss": result.loss,
        "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="resnet-eval", description="Evaluate a resnet-train checkpoint: "
                                     "top-1/top-5 error with centre, 10-crop or multi-scale testing "
                                     "(eval.crops=center|ten|multiscale).")  # fmt: skip
    parser.add_argument("checkpoint", type=Path, help="a checkpoint file (a run's checkpoints/last.pt)")
    parser.add_argument("overrides", nargs="*", help="key=value: data.root=DIR, eval.crops=ten, ...")
    parser.add_argument("--out", type=Path, help="also write the JSON here (as eval.out=FILE), a new file")
    parser.add_argument("--force", action="store_true", help="replace --out (eval.out) if it exists")
    args = parser.parse_args(argv)
    setup_logging(logging.INFO)
    try:
        restored = restore_for_eval(args.checkpoint, args.overrides)
        out = args.out or (Path(restored.config.eval.out) if restored.config.eval.out else None)
        if out is not None:  # refused before the evaluation, not after it
            option = "--out" if args.out else "eval.out"
            check_output(out, inputs=[args.checkpoint], force=args.force, option=option)
        text = json.dumps(evaluate_checkpoint(args.checkpoint, restored), indent=2)
        print(text)
        if out is not None:
            write_text(out, text + "\n")
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
