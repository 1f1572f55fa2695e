#!/usr/bin/env python
"""Input pipeline against training step, each alone, so the slower of the two is visible.

1. The ImageNet input pipeline of data=imagenet (scale augmentation, 224 crop, flip, lighting, mean
   subtraction on the device), on generated full-size JPEGs (500x375 by default), in images/s as the training
   loop receives them (on the device, normalised): data.decode=cpu with N DataLoader workers, and
   data.decode=gpu (nvJPEG) when CUDA is present.
2. One training step of ResNet-50 at 224 (forward, backward, SGD) on synthetic tensors already on the device,
   in images/s.

    .venv/bin/python scripts/bench_input.py                         # defaults sized for a GPU machine
    .venv/bin/python scripts/bench_input.py --images 64 --batch 16 --batches 3 --workers 2 \\
        --train-batch 4 --train-steps 2 --device cpu                # a quick CPU run

Prints a table and writes JSON (--out) with the machine, the versions, the settings and every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import machine, sync, timed
from PIL import Image

from resnet_train.config import Augment, BadImage, Decode, Normalize
from resnet_train.data import Shard
from resnet_train.data.augment import train_transform
from resnet_train.data.files import BadImages, scan_folder
from resnet_train.data.interface import ChannelsLastTrain
from resnet_train.data.normalize import Normalizer
from resnet_train.data.stats import InputStats
from resnet_train.data.stream import StreamTrainBatches
from resnet_train.models import build_model

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_jpegs(root: Path, count: int, width: int, height: int, classes: int = 4) -> None:
    """Photo-like JPEGs (smooth colour fields plus grain, quality 90): they decode like real photographs,
    unlike pure noise (much slower) or flat colour (much faster)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = rng.uniform(0, 255, (height // 50 + 2, width // 50 + 2, 3)).astype(np.uint8)
        field = Image.fromarray(coarse).resize((width, height), Image.BILINEAR)
        pixels = np.asarray(field, dtype=np.float32) + rng.normal(0, 12, (height, width, 3))
        path = root / "train" / f"class{i % classes}" / f"{i:05d}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def bench_input(root: Path, decode: Decode, device: torch.device, args) -> dict:
    files = scan_folder(root / "train")
    stats = InputStats(
        torch.full((3, 224, 224), 120.0), torch.full((3,), 120.0), torch.full((3,), 60.0), 60.0, 1
    )
    normalize = Normalizer(stats, Normalize.mean_image, device)
    batches = StreamTrainBatches(
        files, train_transform(Augment.paper, 224, (256, 480)), normalize, args.batch, seed=0,
        shard=Shard(device), lighting=0.1, workers=args.workers, decode=decode,
        bad_images=BadImages(BadImage.error),
    )  # fmt: skip
    if device.type == "cuda":  # the layout a GPU run trains in (data/build.py)
        batches = ChannelsLastTrain(batches)
    needed = args.batches + 1  # the first batch (worker start-up) is not timed
    epochs = -(-needed // batches.iters_per_epoch)
    stream = (batch for epoch in range(epochs) for batch in batches.epoch(epoch))
    images, _ = next(stream)
    sync(device)
    start, count = time.perf_counter(), 0
    for _ in range(args.batches):
        images, _ = next(stream)
        count += len(images)
    sync(device)
    seconds = time.perf_counter() - start
    return {"images": count, "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1)}


def bench_train_step(device: torch.device, args) -> dict:
    amp_dtype = PRECISIONS[args.precision]
    model = build_model("imagenet", 50, True, 1000, shortcut="B", bottleneck_stride="v1", stem="imagenet")
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.train_batch, 3, 224, 224, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 1000, (args.train_batch,), device=device)
    step_model = torch.compile(model) if args.compile else model

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = torch.nn.functional.cross_entropy(step_model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup_steps):
        step()
    seconds = timed(step, args.train_steps) * args.train_steps
    count = args.train_steps * args.train_batch
    return {"images": count, "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024, help="JPEGs to generate")
    parser.add_argument("--size", default="500x375", help="JPEG width x height")
    parser.add_argument("--batch", type=int, default=128, help="input pipeline batch")
    parser.add_argument("--batches", type=int, default=20, help="timed input batches")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader workers")
    parser.add_argument("--decode", default="cpu,gpu", help="decode paths to measure (gpu only with CUDA)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--train-batch", type=int, default=128, help="training step batch")
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--precision", default=None, choices=sorted(PRECISIONS), help="default: bf16 on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step's model")
    parser.add_argument("--dir", type=Path, help="where to put the JPEGs (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path("bench_input.json"))
    args = parser.parse_args()
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    args.precision = args.precision or ("bf16" if cuda else "fp32")
    width, height = (int(v) for v in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory() as scratch:
        root = args.dir or Path(scratch)
        if not (root / "train").is_dir():
            make_jpegs(root, args.images, width, height)
        results = {}
        for name in args.decode.split(","):
            decode = Decode(name)
            if decode is Decode.gpu and not cuda:
                results[f"input decode={name}"] = {"skipped": "no CUDA device"}
                continue
            results[f"input decode={name}"] = {
                "workers": args.workers,
                **bench_input(root, decode, device, args),
            }
    results["train step resnet50"] = {"precision": args.precision, **bench_train_step(device, args)}

    measured = {k: v for k, v in results.items() if "images_per_s" in v}
    slowest = min(measured, key=lambda k: measured[k]["images_per_s"])
    print(f"{'stage':<24} {'images/s':>10}  settings")
    for key, value in results.items():
        rate = value.get("images_per_s", value.get("skipped", ""))
        settings = ", ".join(f"{k}={v}" for k, v in value.items() if k not in ("images_per_s", "skipped"))
        print(f"{key:<24} {rate!s:>10}  {settings}")
    print(f"slowest: {slowest} (it bounds training throughput)")
    report = {
        "machine": machine(device),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
        "slowest": slowest,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
