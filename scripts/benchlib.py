"""What the benchmarks in scripts/ share: the device and the machine they report, the project's CIFAR config
and training step, the common public loop's step, timing, and the printed rows.

Timing: a fixed number of calls timed at once goes through torch.utils.benchmark.Timer (it synchronises the
device around the timed calls; it runs them on one thread unless told, so `timed` passes the thread count).
The median of single calls (`median_time`, the rounds taken in turns) is timed by hand: Timer.timeit adds two
warm-up calls to every measurement, and blocked_autorange runs for a time, not for a count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from resnet_train.config import (
    CompileMode,
    Config,
    DeviceKind,
    Family,
    ModelConfig,
    Precision,
    SGDConfig,
    SyntheticData,
    TrainerConfig,
    parse_model_name,
)
from resnet_train.engine.distributed import World
from resnet_train.engine.run import Runtime, build, build_trainer, cpu_has_native_bf16
from resnet_train.engine.schedules import PaperCifarConfig
from resnet_train.models import build_model

# The project's variants of the step (trainer settings), by name.
SETTINGS = {
    "fast": {"precision": Precision.fp32, "channels_last": None, "compile": None},  # this device's default
    "plain": {"precision": Precision.fp32, "channels_last": False, "compile": False},
    # The CPU options: fp32 with oneDNN's channels_last kernels, fp32 compiled by Inductor, and bf16 autocast
    # (fast only where the CPU has AVX512_BF16 or AMX; elsewhere it is emulated).
    "cpu_cl": {"precision": Precision.fp32, "channels_last": True, "compile": False},
    "cpu_compile": {"precision": Precision.fp32, "channels_last": False, "compile": True},
    "cpu_cl_compile": {"precision": Precision.fp32, "channels_last": True, "compile": True},
    "cpu_bf16": {"precision": Precision.bf16, "channels_last": True, "compile": False},
}


def make_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the script's docstring as its help and the options every CIFAR benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet20,resnet56,resnet110")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--settings", default="fast,plain", help=f"project settings, from {sorted(SETTINGS)}")
    parser.add_argument("--compile-mode", choices=[m.name for m in CompileMode], default="default")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the common public loop")
    parser.add_argument("--threads", type=int, help="intra-op threads (torch.set_num_threads)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser


def device_for(args) -> torch.device:
    """The device --device names, as a training run would resolve it; sets --threads and cudnn.benchmark."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = Runtime.resolve(TrainerConfig(device=DeviceKind[args.device]), World()).device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, number: int) -> float:
    """Seconds per call of `fn`, `number` calls timed at once (after the Timer's own warm-up calls)."""
    return Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).timeit(number).mean


def median_time(fn, device: torch.device, repeats: int) -> float:
    """The median of `repeats` single calls of `fn`, after one untimed call (compilation, autotuning)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cifar_config(model: str, args, setting: str, iters: int, train_size: int, test_size: int) -> Config:
    """A run of the CIFAR net `model` ("resnet56") on generated 32x32 images, with the trainer `setting`."""
    residual, depth = parse_model_name(model)
    trainer = TrainerConfig(
        max_iters=iters, batch_size=args.batch, eval_every=10**9, log_every=100, checkpoint_every=10**9,
        device=DeviceKind[args.device], progress=False, compile_mode=CompileMode[args.compile_mode],
        **SETTINGS[setting],
    )  # fmt: skip
    data = SyntheticData(num_classes=10, image_size=32, train_size=train_size, test_size=test_size)
    return Config(
        model=ModelConfig(family=Family.cifar, depth=depth, residual=residual),
        data=data,
        trainer=trainer,
        optim=SGDConfig(),
        sched=PaperCifarConfig(),
    )


def resnet50_config(args, compile: bool | None) -> Config:
    """ResNet-50 (option B) at 224 on generated images, bf16 channels_last, batch --in-batch."""
    data = SyntheticData(num_classes=1000, image_size=224, train_size=args.in_batch,
        test_size=args.in_batch,
    )  # fmt: skip
    trainer = TrainerConfig(
        max_iters=1, batch_size=args.in_batch, device=DeviceKind[args.device], progress=False,
        precision=Precision.bf16, channels_last=True, compile=compile,
        compile_mode=CompileMode[args.compile_mode],
    )  # fmt: skip
    model = ModelConfig(family=Family.imagenet, depth=50, residual=True, shortcut="B")
    return Config(model=model, data=data, optim=SGDConfig(), sched=PaperCifarConfig(), trainer=trainer)


def project_step(model: str, args, setting: str, run_dir: Path):
    """A zero-argument function running one training step of the project's loop, and its device."""
    world = World()
    config = cifar_config(model, args, setting, 10**6, train_size=2 * args.batch, test_size=args.batch)
    rt = Runtime.resolve(config.trainer, world)
    built = build(config, run_dir, rt)
    trainer, data = build_trainer(config, built, run_dir, rt), built.data
    images, labels = next(data.train.epoch(0))
    return (lambda: trainer.step(images, labels, 0.1)), rt.device


def baseline_net(model: str, device: torch.device):
    """The CIFAR net `model` and the paper's SGD, as the common public loop builds them."""
    residual, depth = parse_model_name(model)
    net = build_model(Family.cifar, depth, residual, 10, shortcut="A").to(device).train()
    return net, torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def baseline_step(model: str, args, device: torch.device):
    """One step of the common public loop (eager fp32, `loss.item()`), on a fixed batch."""
    net, optimizer = baseline_net(model, device)
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


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """This device's fp32 matrix-multiply rate in GFLOP/s, timed now: the peak a row's rate is a share of."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    seconds = median_time(lambda: a @ b, device, repeats=repeats)
    return 2 * size**3 / seconds / 1e9


def step_gflops(model: str, batch: int, step_s: float, input_size: int = 32) -> float:
    """A training step's rate in GFLOP/s: forward and backward, about three forward passes of 2 FLOPs a
    multiply-add each (models.count_macs), over `batch` images."""
    from resnet_train.models import count_macs

    residual, depth = parse_model_name(model)
    family = Family.cifar if depth % 6 == 2 else Family.imagenet
    macs = count_macs(build_model(family, depth, residual, 10), input_size)
    return 3 * 2 * macs * batch / step_s / 1e9


def machine(device: torch.device) -> dict:
    import subprocess

    import torchvision

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    return {
        "date": time.strftime("%Y-%m-%d"), "commit": commit.strip() or None, "load": os.getloadavg()[0],
        "host": platform.node(), "cpu": cpu_model(),
        "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "cpu_capability": cpu_capability(),
        "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }  # fmt: skip


def cpu_capability() -> str:
    """The vector instructions torch's CPU kernels use (AVX2, AVX512) and whether bf16 is native."""
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"{torch.backends.cpu.get_cpu_capability()}, {native}"


def print_row(row: dict) -> None:
    parts = [f"{row['loop']:<36} {row['model']:<9}", f"step {row['step_ms']:8.2f} ms"]
    if "epoch_s_50k" in row:
        parts.append(f"epoch {row['epoch_s_50k']:8.2f} s/50k")
        parts.append(f"eval {row['eval_s_10k']:6.3f} s/10k")
    rate = row["images_per_s"]
    parts.append(f"{rate:10,.0f} img/s" if rate >= 100 else f"{rate:10.2f} img/s")
    if row.get("gflops") is not None:
        parts.append(f"{row['gflops']:7.1f} GFLOP/s ({100 * row['peak_share']:.0f}% of the matmul peak)")
    if row.get("input_share") is not None:
        parts.append(f"input {100 * row['input_share']:4.1f}%")
    for key in ("speedup_vs_baseline", "speedup_vs_one_job", "speedup_vs_eager"):
        if key in row:
            parts.append(f"{row[key]:.2f}x {key.removeprefix('speedup_vs_').replace('_', ' ')}")
    print("  ".join(parts), flush=True)


def print_rows(rows: list[dict]) -> list[dict]:
    """Print each row as it is measured; returns them."""
    for row in rows:
        print_row(row)
    return rows


def write_report(args, device: torch.device, rows: list[dict]) -> None:
    """The machine, the arguments and every row, as JSON at --json (when given)."""
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        report = {"machine": machine(device), "device": str(device), "args": settings, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
