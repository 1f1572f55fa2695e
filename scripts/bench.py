#!/usr/bin/env python
"""Time resnet-train's end-to-end epoch and training step against the common public-trainer loop.

For each CIFAR model, in one process on one device:
- project/<setting>: the project's own loop (GPU-resident data, on-device crop/flip, the Trainer with its
  TensorBoard logging) for each setting: `fast` (this device's defaults; on a GPU fp32 with TF32
  convolutions, channels_last, compiled; `trainer.compile_mode=reduce_overhead` adds CUDA graphs) and
  `plain` (fp32, eager), and the CPU options `cpu_cl` (fp32
  channels_last), `cpu_compile`, `cpu_cl_compile` and `cpu_bf16` (bf16 autocast, channels_last);
- baseline: the loop most public CIFAR trainers use: a torchvision-style dataset of PIL images with
  per-sample RandomCrop/RandomHorizontalFlip/ToTensor/Normalize in a DataLoader with 4 workers, eager fp32,
  reading the loss back (`loss.item()`) every step.
Each reports the median step time, the median epoch time (seconds per 50,000 images), the evaluation time
for the test set, and, for the project, the share of the epoch spent producing batches.
With --imagenet, also ResNet-50 at 224x224 on synthetic tensors: the eager bf16 channels_last step against
the project's fast step, in images/s.

scripts/bench_steps.py times the bare steps only (settings and baseline in turns) and jobs side by side.

    python scripts/bench.py --models resnet20,resnet56 --json bench.json
    python scripts/bench.py --device cpu --train-size 2560 --epochs 2 --models resnet20   # a quick CPU run
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from benchlib import (
    baseline_net,
    cifar_config,
    common_step,
    device_for,
    machine,
    make_parser,
    matmul_gflops,
    median_time,
    print_rows,
    resnet50_config,
    step_gflops,
    sync,
    write_report,
)
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from resnet_train.data import load_splits
from resnet_train.engine.distributed import World
from resnet_train.engine.evaluate import evaluate
from resnet_train.engine.run import Runtime, build, build_trainer

EPOCH_IMAGES = 50_000


class EpochClock:
    """Training batches that wrap the loop's batch source and records when each epoch starts (device idle)."""

    def __init__(self, inner, device: torch.device):
        self.inner, self.device, self.marks = inner, device, []
        self.iters_per_epoch = inner.iters_per_epoch

    def epoch(self, epoch, start=0):
        sync(self.device)
        self.marks.append(time.perf_counter())
        yield from self.inner.epoch(epoch, start)


def time_project(model: str, args, setting: str) -> dict:
    world = World()
    probe = cifar_config(model, args, setting, 1, args.train_size, args.test_size)
    rt = Runtime.resolve(probe.trainer, world)
    ipe = args.train_size // args.batch
    iters = (args.warmup_epochs + args.epochs + 1) * ipe  # one spare epoch absorbs the final eval and save
    config = replace(probe, trainer=replace(probe.trainer, max_iters=iters))
    with tempfile.TemporaryDirectory() as run_dir:
        built = build(config, Path(run_dir), rt)
        trainer, data = build_trainer(config, built, Path(run_dir), rt), built.data
        clock = EpochClock(data.train, rt.device)
        trainer.train_batches = clock
        trainer.fit()
        epochs = [b - a for a, b in zip(clock.marks, clock.marks[1:])][args.warmup_epochs :][: args.epochs]
        images, labels = next(data.train.epoch(0))
        step = median_time(lambda: trainer.step(images, labels, 0.1), rt.device, repeats=args.step_repeats)
        batches = median_time(lambda: [None for _ in data.train.epoch(0)], rt.device, repeats=3) / ipe
        test = data.evals["test"]
        eval_s = median_time(lambda: evaluate(trainer.raw_model, test, rt.device, rt.amp_dtype), rt.device, 3)
        trainer.logger.close()
    epoch_s = statistics.median(epochs)
    return {
        "loop": f"project/{setting}", "model": model, "precision": rt.precision,
        "channels_last": rt.channels_last, "compiled": rt.compile, "step_ms": 1e3 * step,
        "epoch_s_50k": epoch_s * EPOCH_IMAGES / (ipe * args.batch),
        "images_per_s": ipe * args.batch / epoch_s,
        "eval_s_10k": eval_s * 10_000 / args.test_size, "input_share": batches * ipe / epoch_s,
    }  # fmt: skip


class PilImages(Dataset):
    """What torchvision's CIFAR10 does per sample: a PIL image from the uint8 array, then the transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels, self.transform = labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def time_baseline(model: str, args, device: torch.device) -> dict:
    splits = load_splits(
        "synthetic", "", num_classes=10, train_size=args.train_size, test_size=args.test_size
    )
    normalize = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    train_tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    on_cuda = device.type == "cuda"
    loader = DataLoader(
        PilImages(splits.train.images, splits.train.labels, train_tf), batch_size=args.batch, shuffle=True,
        num_workers=4, pin_memory=on_cuda, persistent_workers=True,
    )  # fmt: skip
    test_tf = transforms.Compose([transforms.ToTensor(), normalize])
    test_loader = DataLoader(
        PilImages(splits.test.images, splits.test.labels, test_tf), batch_size=1000, num_workers=4,
        pin_memory=on_cuda,
    )  # fmt: skip
    net, optimizer = baseline_net(model, device)

    def train_epoch():
        net.train()
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            common_step(net, optimizer, images, labels)

    @torch.no_grad()
    def eval_epoch():
        net.eval()
        for images, labels in test_loader:
            (net(images.to(device)).argmax(1) != labels.to(device)).sum().item()

    images, labels = next(iter(loader))
    images, labels = images.to(device), labels.to(device)

    def step():
        common_step(net, optimizer, images, labels)

    step_s = median_time(step, device, repeats=args.step_repeats)
    epoch_s = median_time(train_epoch, device, repeats=args.epochs)
    eval_s = median_time(eval_epoch, device, repeats=3)
    seen = len(loader) * args.batch
    return {
        "loop": "baseline", "model": model, "precision": "fp32", "channels_last": False, "compiled": False,
        "step_ms": 1e3 * step_s, "epoch_s_50k": epoch_s * EPOCH_IMAGES / seen, "images_per_s": seen / epoch_s,
        "eval_s_10k": eval_s * 10_000 / args.test_size, "input_share": None,
    }  # fmt: skip


def time_epochs(model: str, args, device: torch.device) -> list[dict]:
    """End-to-end epochs of every setting, then of the baseline."""
    rows = [time_project(model, args, setting) for setting in args.settings.split(",")]
    if not args.no_baseline:
        rows.append(time_baseline(model, args, device))
        for row in rows[:-1]:
            row["speedup_vs_baseline"] = rows[-1]["epoch_s_50k"] / row["epoch_s_50k"]
    return rows


def time_imagenet_step(args, device: torch.device) -> list[dict]:
    """ResNet-50 at 224 on synthetic tensors: eager bf16 channels_last vs the project's fast step."""
    rows = []
    for name, compiled in [("eager bf16 channels_last", False), ("project fast", None)]:
        config = resnet50_config(args, compiled)
        rt = Runtime.resolve(config.trainer, World())
        with tempfile.TemporaryDirectory() as run_dir:
            built = build(config, Path(run_dir), rt)
            trainer = build_trainer(config, built, Path(run_dir), rt)
            images = torch.randn(args.in_batch, 3, 224, 224, device=rt.device)
            images = images.contiguous(memory_format=torch.channels_last)
            labels = torch.randint(0, 1000, (args.in_batch,), device=rt.device)

            def five_steps(trainer=trainer, images=images, labels=labels):
                for _ in range(5):
                    trainer.step(images, labels, 0.1)

            seconds = median_time(five_steps, rt.device, args.in_repeats) / 5
            trainer.logger.close()
        rows.append({"loop": f"resnet50@224/{name}", "model": "resnet50", "compiled": rt.compile,
                     "step_ms": 1e3 * seconds,
                     "images_per_s": args.in_batch / seconds})  # fmt: skip
    for row in rows[1:]:
        row["speedup_vs_eager"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def main(argv=None) -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000, help="images in the timed evaluation")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after --warmup-epochs)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--step-repeats", type=int, default=20)
    parser.add_argument("--imagenet", action="store_true", help="also time ResNet-50 at 224")
    parser.add_argument("--in-batch", type=int, default=256, help="batch of the ResNet-50 step")
    parser.add_argument("--in-repeats", type=int, default=5, help="timed rounds of 5 ResNet-50 steps")
    args = parser.parse_args(argv)
    device = device_for(args)
    peak = matmul_gflops(device)
    m = machine(device)
    print(
        f"{m['date']} commit {m['commit']}, {m['card'] or m['cpu']} ({m['cpu_capability']}), "
        f"torch {m['torch']}, load {m['load']:.1f}; fp32 matmul {peak:,.0f} GFLOP/s"
    )
    rows = []
    for model in filter(None, args.models.split(",")):  # --models "" --imagenet: ResNet-50 only
        measured = time_epochs(model, args, device)
        for row in measured:  # the step's arithmetic rate, and its share of this device's matmul rate
            row["gflops"] = step_gflops(model, args.batch, row["step_ms"] / 1e3)
            row["peak_share"] = row["gflops"] / peak
        rows += print_rows(measured)
    if args.imagenet:
        rows += print_rows(time_imagenet_step(args, device))
    write_report(args, device, rows)


if __name__ == "__main__":
    main()
