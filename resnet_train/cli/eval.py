"""`resnet-eval`: evaluate a checkpoint on its dataset's test split with the paper's testing protocols.

    resnet-eval CHECKPOINT [key=value ...] [--out FILE]

The config is the one stored in the checkpoint; `key=value` overrides change it (`data.root=DIR`,
`trainer.device=cpu`, `data.workers=4`) and set this tool's own options: `eval.crops=center|ten|multiscale`
and `eval.out=FILE`. Values are validated against the same schema as training (resnet_train/config.py).
Prints the errors as JSON on stdout (logs go to stderr) and writes them to --out / eval.out.

Streamed datasets (data=imagenet, data=imagefolder) are evaluated on the test split folder (imagenet: val/),
with the class names and the mean image stored in the checkpoint, so train/ is not needed. In-memory
datasets (CIFAR) are evaluated on the original test images (Sec. 4.2), centre view only.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import Config, Crops, EvalConfig, Loader
from ..errors import UserError
from ..logs import setup_logging

log = logging.getLogger("resnet_train")


@dataclass
class EvalSettings(Config):
    """The training schema plus resnet-eval's own `eval` group."""

    eval: EvalConfig = field(default_factory=EvalConfig)


def compose(stored_config: dict, overrides: list[str]) -> EvalSettings:
    """The checkpoint's config with `overrides` (dotted key=value) applied, validated by the schema."""
    try:
        merged = OmegaConf.merge(
            OmegaConf.structured(EvalSettings), stored_config, OmegaConf.from_dotlist(list(overrides))
        )
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise UserError(f"bad override or stored config: {str(error).splitlines()[0]}") from None


def stream_batches(settings: EvalSettings, checkpoint: dict, device: torch.device):
    """The test split of a streamed dataset through the chosen views; (batches, its folder, bad images)."""
    from ..data.augment import DeviceNormalize, center_view, scale_views, ten_views
    from ..data.folder import BadImages, eval_folder, scan_folder
    from ..data.stats import InputStats
    from ..data.stream import StreamEvalBatches, input_stats

    d, crops = settings.data, settings.eval.crops
    root = Path(d.root).expanduser()
    bad_images = BadImages(d.on_bad_image)
    stored = checkpoint.get("input")
    if stored is not None:
        classes, stats = stored["classes"], InputStats.from_state_dict(stored["stats"])
    else:  # a checkpoint without its inputs: the classes and mean image come from train/ (and its cache)
        train_files = scan_folder(root / "train")
        classes = train_files.classes
        stats = input_stats(train_files, d, [root], bad_images=bad_images, device=torch.device("cpu"))
    files = scan_folder(eval_folder(root, d.name), classes)
    views = {
        Crops.center: functools.partial(center_view, resize=d.test_resize, size=d.image_size),
        Crops.ten: functools.partial(ten_views, resize=d.test_resize, size=d.image_size),
        Crops.multiscale: functools.partial(scale_views, scales=list(d.test_scales)),
    }
    views_per_image = {Crops.center: 1, Crops.ten: 10, Crops.multiscale: 2 * len(d.test_scales)}[crops]
    # Multi-scale views differ in size: one image per loader item keeps few tensors (and file descriptors) in
    # flight between the workers and this process; the net scores them one image at a time anyway.
    batch_size = max(1, settings.trainer.eval_batch_size // views_per_image)
    if crops is Crops.multiscale:
        batch_size = 1
    normalize = DeviceNormalize(stats, d.normalize, device)
    batches = StreamEvalBatches(
        files, views[crops], normalize, batch_size, device=device, workers=d.workers, bad_images=bad_images
    )
    return batches, files, bad_images, len(classes)


def memory_batches(settings: EvalSettings, device: torch.device):
    from ..data import EvalBatches, Normalizer, load_splits
    from ..data.folder import BadImages

    d = settings.data
    if settings.eval.crops is not Crops.center:
        raise UserError(
            f"eval.crops={settings.eval.crops.value} needs a streamed dataset (data.loader=stream); "
            f"{d.name.value} is tested on the original images only (Sec. 4.2): use eval.crops=center"
        )
    splits = load_splits(
        d.name, d.root, download=False, num_classes=d.num_classes, image_size=d.image_size,
        val_size=d.val_size, train_size=d.train_size, test_size=d.test_size,
    )  # fmt: skip
    normalize = Normalizer.fit(splits.train.images)
    batches = EvalBatches(splits.test, normalize, settings.trainer.eval_batch_size, device=device)
    return batches, splits.test, BadImages(d.on_bad_image), splits.num_classes


def evaluate_checkpoint(path: Path, overrides: list[str]) -> tuple[dict, EvalSettings]:
    """The errors of the checkpoint at `path` as a JSON-ready dict, and the settings used."""
    from ..engine.checkpoint import load_checkpoint
    from ..engine.run import AMP_DTYPES, resolve_device
    from ..engine.testing import evaluate_views
    from ..models import build_model, model_name

    checkpoint = load_checkpoint(path)
    if "config" not in checkpoint:
        raise UserError(f"{path} holds no config; it was not written by resnet-train")
    settings = compose(checkpoint["config"], overrides)
    m, d, t = settings.model, settings.data, settings.trainer
    device = resolve_device(t.device)
    amp_dtype = AMP_DTYPES.get(t.precision, torch.bfloat16 if device.type == "cuda" else None)
    if d.loader is Loader.stream:
        batches, files, bad_images, num_classes = stream_batches(settings, checkpoint, device)
    else:
        batches, files, bad_images, num_classes = memory_batches(settings, device)
    model = build_model(
        m.family, m.depth, m.residual, num_classes, shortcut=m.shortcut,
        bottleneck_stride=m.bottleneck_stride, stem=m.stem, input_size=d.image_size,
        zero_init_residual=m.zero_init_residual,
    )  # fmt: skip
    model.load_state_dict(checkpoint["model"])
    model.to(device)
    crops = settings.eval.crops
    log.info("evaluating %s (%s views) on %d images of %s", path, crops.value, len(files), d.name.value)
    result = evaluate_views(model, batches, device, amp_dtype)
    report = {
        "checkpoint": str(path),
        "model": model_name(m.residual, m.depth),
        "dataset": d.name.value,
        "split": "test",
        "folder": getattr(files, "folder", None),
        "iteration": checkpoint.get("trainer", {}).get("iteration"),
        "crops": crops.value,
        "scales": list(d.test_scales) if crops is Crops.multiscale else None,
        "images": len(files) - bad_images.count,
        "skipped_images": bad_images.count,
        "top1_error": result.error,
        "top5_error": result.top5_error,
        "loss": result.loss,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    return report, settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="resnet-eval",
        description="Evaluate a resnet-train checkpoint: top-1/top-5 error with centre, 10-crop or "
        "multi-scale testing (eval.crops=center|ten|multiscale).",
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint file (a run's checkpoints/last.pt)")
    parser.add_argument("overrides", nargs="*", help="key=value: data.root=DIR, eval.crops=ten, ...")
    parser.add_argument("--out", type=Path, help="also write the JSON here (as eval.out=FILE)")
    args = parser.parse_args(argv)
    setup_logging(logging.INFO)
    try:
        report, settings = evaluate_checkpoint(args.checkpoint, args.overrides)
    except UserError as error:
        log.error("%s", error)
        sys.exit(error.exit_code)
    text = json.dumps(report, indent=2)
    print(text)
    out = args.out or (Path(settings.eval.out) if settings.eval.out else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
