#!/usr/bin/env python
"""Time resnet-train's training step and end-to-end epoch against the common public-trainer loop.

For each CIFAR model, in one process on one device:
- project/<setting>: the project's own loop (GPU-resident data, on-device crop/flip, the Trainer with its
  TensorBoard logging) for each setting: `fast` (this device's defaults; on a GPU fp32 with TF32
  convolutions, channels_last, compiled), `graph` (fast, with the whole step replayed as one CUDA graph:
  trainer.cuda_graph=true; CUDA only) and `plain` (fp32, eager), and the CPU options `cpu_cl` (fp32
  channels_last), `cpu_compile`, `cpu_cl_compile` and `cpu_bf16` (bf16 autocast, channels_last);
- baseline: the loop most public CIFAR trainers use: a torchvision-style dataset of PIL images with
  per-sample RandomCrop/RandomHorizontalFlip/ToTensor/Normalize in a DataLoader with 4 workers, eager fp32,
  reading the loss back (`loss.item()`) every step.
Each reports the median step time, the median epoch time (seconds per 50,000 images), the evaluation time
for the test set, and, for the project, the share of the epoch spent producing batches.
With --imagenet, also ResNet-50 at 224x224 on synthetic tensors: the eager bf16 channels_last step against
the project's fast step (and, on CUDA, its CUDA-graph step), in images/s.

--steps-only times only the bare steps, the settings and the baseline in turns (medians of --rounds), so that
load from other work on the machine falls on all of them alike; --side-by-side N compares N jobs running at
once, each on threads / N intra-op threads, with one job on all of them (--threads N sets the threads).

    python scripts/bench.py --models resnet20,resnet56 --json bench.json
    python scripts/bench.py --device cpu --train-size 2560 --epochs 2 --models resnet20   # a quick CPU run
    python scripts/bench.py --device cpu --steps-only --settings plain,cpu_cl,cpu_compile,cpu_bf16
    python scripts/bench.py --device cpu --side-by-side 2 --settings cpu_cl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from resnet_train.config import (
    CompileMode,
    Config,
    DataConfig,
    DatasetName,
    DeviceKind,
    Family,
    ModelConfig,
    Precision,
    Shortcut,
    TrainerConfig,
)  # fmt: skip
from resnet_train.data import TrainBatches
from resnet_train.engine.distributed import World
from resnet_train.engine.evaluate import evaluate
from resnet_train.engine.run import Runtime, build_trainer

EPOCH_IMAGES = 50_000
SETTINGS = {
    "fast": {"precision": Precision.fp32, "channels_last": None, "compile": None},  # this device's default
    "graph": {"precision": Precision.fp32, "channels_last": None, "compile": None, "cuda_graph": True},
    "plain": {"precision": Precision.fp32, "channels_last": False, "compile": False},
    # The CPU options: fp32 with oneDNN's channels_last kernels, fp32 compiled by Inductor, and bf16 autocast
    # (fast only where the CPU has AVX512_BF16 or AMX; elsewhere it is emulated).
    "cpu_cl": {"precision": Precision.fp32, "channels_last": True, "compile": False},
    "cpu_compile": {"precision": Precision.fp32, "channels_last": False, "compile": True},
    "cpu_cl_compile": {"precision": Precision.fp32, "channels_last": True, "compile": True},
    "cpu_bf16": {"precision": Precision.bf16, "channels_last": True, "compile": False},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_config(model: str, args, setting: str, iters: int) -> Config:
    residual, depth = model.startswith("resnet"), int(model.removeprefix("resnet").removeprefix("plain"))
    trainer = TrainerConfig(
        max_iters=iters, batch_size=args.batch, eval_every=10**9, log_every=100, checkpoint_every=10**9,
        device=DeviceKind[args.device], progress=False, compile_mode=CompileMode[args.compile_mode],
        **SETTINGS[setting],
    )  # fmt: skip
    data = DataConfig(
        name=DatasetName.synthetic,
        num_classes=10,
        image_size=32,
        train_size=args.train_size,
        test_size=args.test_size,
    )
    return Config(
        model=ModelConfig(family=Family.cifar, depth=depth, residual=residual), data=data, trainer=trainer
    )


class EpochClock:
    """A TrainBatches that wraps the loop's batch source and records when each epoch starts (device idle)."""

    def __init__(self, inner: TrainBatches, device: torch.device):
        self.inner, self.device, self.marks = inner, device, []
        self.iters_per_epoch = inner.iters_per_epoch

    def epoch(self, epoch, start=0):
        sync(self.device)
        self.marks.append(time.perf_counter())
        yield from self.inner.epoch(epoch, start)


def time_project(model: str, args, setting: str) -> dict:
    world = World()
    probe = cifar_config(model, args, setting, 1)
    rt = Runtime.resolve(probe.trainer, world)
    ipe = args.train_size // args.batch
    iters = (args.warmup_epochs + args.epochs + 1) * ipe  # one spare epoch absorbs the final eval and save
    config = replace(probe, trainer=replace(probe.trainer, max_iters=iters))
    with tempfile.TemporaryDirectory() as run_dir:
        trainer, data, _ = build_trainer(config, Path(run_dir), world, rt)
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
        "channels_last": rt.channels_last, "compiled": rt.compile, "cuda_graph": rt.cuda_graph,
        "step_ms": 1e3 * step,
        "epoch_s_50k": epoch_s * EPOCH_IMAGES / (ipe * args.batch),
        "images_per_s": ipe * args.batch / epoch_s,
        "eval_s_10k": eval_s * 10_000 / args.test_size, "input_share": batches * ipe / epoch_s,
    }  # fmt: skip


def median_time(fn, device, repeats: int) -> float:
    fn()  # warm-up (compilation, cudnn autotuning)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PilImages(Dataset):
    """What torchvision's CIFAR10 does per sample: a PIL image from the uint8 array, then the transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels, self.transform = labels.tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def time_baseline(model: str, args) -> dict:
    from resnet_train.data import load_splits
    from resnet_train.models import build_model

    device = Runtime.resolve(TrainerConfig(device=DeviceKind[args.device]), World()).device
    splits = load_splits(
        DatasetName.synthetic, "", num_classes=10, train_size=args.train_size, test_size=args.test_size
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
    residual, depth = model.startswith("resnet"), int(model.removeprefix("resnet").removeprefix("plain"))
    net = build_model(Family.cifar, depth, residual, 10, shortcut=Shortcut.A).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

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


def time_imagenet_step(args) -> list[dict]:
    """ResNet-50 at 224 on synthetic tensors: eager bf16 channels_last vs the project's fast step."""
    rows = []
    base = Config(
        model=ModelConfig(family=Family.imagenet, depth=50, residual=True, shortcut=Shortcut.B),
        data=DataConfig(
            name=DatasetName.synthetic, num_classes=1000, image_size=224, train_size=args.in_batch,
            test_size=args.in_batch,
        ),
    )  # fmt: skip
    variants = [("eager bf16 channels_last", False, False), ("project fast", None, False)]
    if Runtime.resolve(TrainerConfig(device=DeviceKind[args.device]), World()).device.type == "cuda":
        variants.append(("project fast + CUDA graph", None, True))
    for name, compiled, graph in variants:
        trainer_config = TrainerConfig(
            max_iters=1, batch_size=args.in_batch, device=DeviceKind[args.device], progress=False,
            precision=Precision.bf16, channels_last=True, compile=compiled,
            compile_mode=CompileMode[args.compile_mode], cuda_graph=graph,
        )  # fmt: skip
        config = replace(base, trainer=trainer_config)
        rt = Runtime.resolve(trainer_config, World())
        with tempfile.TemporaryDirectory() as run_dir:
            trainer, data, _ = build_trainer(config, Path(run_dir), World(), rt)
            images = torch.randn(args.in_batch, 3, 224, 224, device=rt.device)
            images = images.contiguous(memory_format=torch.channels_last)
            labels = torch.randint(0, 1000, (args.in_batch,), device=rt.device)

            def five_steps(trainer=trainer, images=images, labels=labels):
                for _ in range(5):
                    trainer.step(images, labels, 0.1)

            seconds = median_time(five_steps, rt.device, args.in_repeats) / 5
            trainer.logger.close()
        rows.append({"loop": f"resnet50@224/{name}", "model": "resnet50", "compiled": rt.compile,
                     "cuda_graph": rt.cuda_graph, "step_ms": 1e3 * seconds,
                     "images_per_s": args.in_batch / seconds})  # fmt: skip
    for row in rows[1:]:
        row["speedup_vs_eager"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def project_step(model: str, args, setting: str, run_dir: Path):
    """A zero-argument function running one training step of the project's loop, and its device."""
    world = World()
    config = cifar_config(model, args, setting, 10**6)
    config = replace(config, data=replace(config.data, train_size=2 * args.batch, test_size=args.batch))
    rt = Runtime.resolve(config.trainer, world)
    trainer, data, _ = build_trainer(config, run_dir, world, rt)
    images, labels = next(data.train.epoch(0))
    return (lambda: trainer.step(images, labels, 0.1)), rt.device


def baseline_step(model: str, args):
    """One step of the common public loop (eager fp32, `loss.item()`), on a fixed batch."""
    from resnet_train.models import build_model

    device = Runtime.resolve(TrainerConfig(device=DeviceKind[args.device]), World()).device
    residual, depth = model.startswith("resnet"), int(model.removeprefix("resnet").removeprefix("plain"))
    net = build_model(Family.cifar, depth, residual, 10, shortcut=Shortcut.A).to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    return lambda: common_step(net, optimizer, images, labels)


def common_step(net, optimizer, images, labels) -> None:
    """The common public loop's step: eager, and `loss.item()` (the running-average meter most trainers
    keep) waits for the device every step."""
    loss = F.cross_entropy(net(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    loss.item()


def time_steps_interleaved(model: str, args) -> list[dict]:
    """Bare step times of every setting (and the baseline), taken in turns so that load from other work on
    the machine falls on all of them alike: --rounds rounds of --round-steps steps each, medians reported."""
    settings = args.settings.split(",")
    with tempfile.TemporaryDirectory() as run_dir:
        steps = {}
        for setting in settings:
            steps[f"project/{setting}"], device = project_step(model, args, setting, Path(run_dir) / setting)
        if not args.no_baseline:
            steps["baseline"] = baseline_step(model, args)
        for step in steps.values():  # warm-up: compilation, oneDNN primitive caches
            for _ in range(3):
                step()
        times = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                sync(device)
                start = time.perf_counter()
                for _ in range(args.round_steps):
                    step()
                sync(device)
                times[name].append((time.perf_counter() - start) / args.round_steps)
    rows = []
    for name, seconds in times.items():
        step_s = statistics.median(seconds)
        rows.append({"loop": name, "model": model, "step_ms": 1e3 * step_s,
                     "images_per_s": args.batch / step_s,
                     "step_ms_rounds": [round(1e3 * s, 1) for s in seconds]})  # fmt: skip
    if "baseline" in times:
        for row in rows[:-1]:
            row["speedup_vs_baseline"] = rows[-1]["step_ms"] / row["step_ms"]
    return rows


def _side_by_side_job(model, args, setting, threads, barrier, results) -> None:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run_dir:
        step, device = project_step(model, args, setting, Path(run_dir))
        for _ in range(3):
            step()
        barrier.wait()
        start = time.perf_counter()
        for _ in range(args.round_steps):
            step()
        sync(device)
        results.put(time.perf_counter() - start)


def time_side_by_side(model: str, args) -> list[dict]:
    """Throughput of 1 job x T threads against N jobs x T/N threads running at once (T = --threads or
    every core, N = --side-by-side), taken in turns for --rounds rounds; each job times --round-steps steps
    of the first of --settings, all jobs starting together."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    setting = args.settings.split(",")[0]
    total = args.threads or torch.get_num_threads()
    arrangements = [(1, total), (args.side_by_side, max(1, total // args.side_by_side))]
    rates = {arrangement: [] for arrangement in arrangements}
    for _ in range(args.rounds):
        for jobs, threads in arrangements:
            barrier, results = context.Barrier(jobs), context.Queue()
            job = (model, args, setting, threads, barrier, results)
            workers = [context.Process(target=_side_by_side_job, args=job) for _ in range(jobs)]
            for worker in workers:
                worker.start()
            seconds = [results.get() for _ in workers]
            for worker in workers:
                worker.join()
            rates[(jobs, threads)].append(jobs * args.round_steps * args.batch / max(seconds))
    rows = []
    for (jobs, threads), values in rates.items():
        rate = statistics.median(values)
        rows.append({"loop": f"project/{setting} {jobs} job(s) x {threads} thread(s)", "model": model,
                     "step_ms": 1e3 * jobs * args.batch / rate, "images_per_s": rate,
                     "images_per_s_rounds": [round(v, 1) for v in values]})  # fmt: skip
    rows[1]["speedup_vs_one_job"] = rows[1]["images_per_s"] / rows[0]["images_per_s"]
    return rows


def machine(device: torch.device) -> dict:
    return {
        "host": platform.node(), "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "cpu_capability": cpu_capability(),
        "python": platform.python_version(), "torch": torch.__version__,
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }  # fmt: skip


def cpu_capability() -> str:
    """The vector instructions torch's CPU kernels use (AVX2, AVX512) and whether bf16 is native."""
    from resnet_train.engine.run import cpu_has_native_bf16

    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{torch.backends.cpu.get_cpu_capability()}, {native}"


def time_epochs(model: str, args) -> list[dict]:
    """End-to-end epochs of every setting, then of the baseline."""
    rows = [time_project(model, args, setting) for setting in args.settings.split(",")]
    if not args.no_baseline:
        rows.append(time_baseline(model, args))
        for row in rows[:-1]:
            row["speedup_vs_baseline"] = rows[-1]["epoch_s_50k"] / row["epoch_s_50k"]
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet20,resnet56,resnet110")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000, help="images in the timed evaluation")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after --warmup-epochs)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--step-repeats", type=int, default=20)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--settings", default="fast,plain", help=f"project settings, from {sorted(SETTINGS)}")
    parser.add_argument("--compile-mode", choices=[m.name for m in CompileMode], default="default")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--imagenet", action="store_true", help="also time ResNet-50 at 224")
    parser.add_argument("--in-batch", type=int, default=256, help="batch of the ResNet-50 step")
    parser.add_argument("--in-repeats", type=int, default=5, help="timed rounds of 5 ResNet-50 steps")
    parser.add_argument("--threads", type=int, help="intra-op threads (torch.set_num_threads)")
    parser.add_argument("--steps-only", action="store_true",
                        help="bare step times only, settings and baseline taken in turns")  # fmt: skip
    parser.add_argument("--side-by-side", type=int, metavar="N",
                        help="throughput of N jobs at once against one job on all the threads")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5, help="turns of --steps-only and --side-by-side")
    parser.add_argument("--round-steps", type=int, default=5, help="steps timed per turn")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = Runtime.resolve(TrainerConfig(device=DeviceKind[args.device]), World()).device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for model in filter(None, args.models.split(",")):  # --models "" --imagenet: ResNet-50 only
        if args.side_by_side:
            model_rows = time_side_by_side(model, args)
        elif args.steps_only:
            model_rows = time_steps_interleaved(model, args)
        else:
            model_rows = time_epochs(model, args)
        for row in model_rows:
            print_row(row)
        rows += model_rows
    if args.imagenet:
        for row in time_imagenet_step(args):
            rows.append(row)
            print_row(row)
            if "speedup_vs_eager" in row:
                print(f"  {row['loop']}: {row['speedup_vs_eager']:.2f}x the eager bf16 step")
    settings = vars(args) | {"json": str(args.json)}
    report = {"machine": machine(device), "device": str(device), "args": settings, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_row(row: dict) -> None:
    parts = [f"{row['loop']:<36} {row['model']:<9}", f"step {row['step_ms']:8.2f} ms"]
    if "epoch_s_50k" in row:
        parts.append(f"epoch {row['epoch_s_50k']:8.2f} s/50k")
        parts.append(f"eval {row['eval_s_10k']:6.3f} s/10k")
    rate = row["images_per_s"]
    parts.append(f"{rate:10,.0f} img/s" if rate >= 100 else f"{rate:10.2f} img/s")
    if row.get("input_share") is not None:
        parts.append(f"input {100 * row['input_share']:4.1f}%")
    for key in ("speedup_vs_baseline", "speedup_vs_one_job"):
        if key in row:
            parts.append(f"{row[key]:.2f}x {key.removeprefix('speedup_vs_').replace('_', ' ')}")
    print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
