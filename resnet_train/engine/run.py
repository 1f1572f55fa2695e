"""One training job on one rank: a validated Config (plain dataclasses, no Hydra) turned into data, model,
optimizer, schedule and loop, and run."""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import (
    CompileMode,
    Config,
    DeviceKind,
    OptimConfig,
    Precision,
    TrainerConfig,
    build_target,
    config_to_plain,
    locate,
)
from ..data import RunData, Shard, build_data
from ..errors import UserError
from ..models import count_parameters
from . import distributed
from .logger import RunLogger, log_loading, log_start
from .loop import LoopSettings, Trainer
from .restore import model_from_config
from .rundir import check_data_identity, find_resume_checkpoint, run_complete
from .schedules import Schedule, uses_warmup
from .summary import RunSummary

log = logging.getLogger("resnet_train")

AMP_DTYPES = {Precision.fp32: None, Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}


def resolve_device(kind: DeviceKind, local_rank: int = 0) -> torch.device:
    if kind is DeviceKind.cpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if kind is DeviceKind.cuda:
            raise UserError("trainer.device=cuda, but no CUDA device is available (use trainer.device=cpu)")
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise UserError(f"rank needs GPU {local_rank}, but only {torch.cuda.device_count()} are visible")
    return torch.device("cuda", local_rank)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (Linux's avx512_bf16 or amx_bf16 flags); else autocast
    emulates it in fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: assume no native bf16
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def tf32_convolutions(device: torch.device) -> bool:
    """Whether fp32 convolutions on `device` run in TF32: PyTorch's default from compute capability 8.0."""
    cuda = device.type == "cuda"
    return cuda and torch.backends.cudnn.allow_tf32 and torch.cuda.get_device_capability(device) >= (8, 0)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(o: OptimConfig, params, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer `optim._target_` names, fused on CUDA, else multi-tensor (the flags it takes)."""
    implementation = {"fused": True} if device.type == "cuda" else {"foreach": True}
    takes = inspect.signature(locate(o._target_, "optim._target_")).parameters
    return build_target(o, params, **{k: v for k, v in implementation.items() if k in takes})


def build_schedule(config: Config) -> Schedule:
    """The run's lr schedule, its warm-up as the net's depth decides (Sec. 4.2)."""
    m, s = config.model, config.sched
    warmup = uses_warmup(s.warmup, m.family, m.depth)
    return build_target(s, config.optim.lr, config.trainer.max_iters, warmup=warmup)


@dataclass(frozen=True)
class Runtime:
    """Where and how this process trains, resolved once from the trainer settings: its place among the
    run's processes, device, threads, arithmetic and compilation."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    compile_mode: CompileMode
    world: distributed.World = distributed.World()
    threads: int | None = None  # intra-op threads; None: torch's own choice
    tf32_convolutions: bool = False  # fp32 convolutions on CUDA run in TF32 (cuDNN's and PyTorch's default)
    emulated_bf16: bool = False  # bf16 autocast on a CPU that has no bf16 arithmetic of its own

    @property
    def precision(self) -> str:
        """The arithmetic as the log, metrics.json and HPARAMS state it ("fp32 (TF32 convolutions)", ...)."""
        if self.amp_dtype is not None:
            return {torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return "fp32 (TF32 convolutions)" if self.tf32_convolutions else "fp32"

    @classmethod
    def resolve(
        cls, t: TrainerConfig, world: distributed.World | None = None, threads: int | None = None
    ) -> Runtime:
        """The trainer's settings on this machine, with what is left unset (None) chosen for the device."""
        world = world or distributed.World()
        device = resolve_device(t.device, world.local_rank)
        amp_dtype = AMP_DTYPES[t.precision]
        # fp32 everywhere by default: bf16 autocast left a 56-layer net of the degradation experiment at
        # chance where fp32 trains it (docs/precision.md). On CUDA, PyTorch runs fp32 convolutions in TF32 by
        # default (`tf32_convolutions`): kept for its speed, and stated wherever the precision is.
        # On a CPU, channels_last lets oneDNN use its blocked convolution kernels; torch.compile stays off,
        # its gain not repaying a compile of minutes (the timings: docs/benchmarks.md). Both keep fp32.
        return cls(
            device, amp_dtype, True if t.channels_last is None else t.channels_last,
            device.type == "cuda" if t.compile is None else t.compile, t.compile_mode, world, threads,
            tf32_convolutions=amp_dtype is None and tf32_convolutions(device),
            emulated_bf16=device.type == "cpu" and amp_dtype is torch.bfloat16 and not cpu_has_native_bf16(),
        )  # fmt: skip

    def enter(self) -> None:  # this process's threads, and cuDNN's kernel search
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True


@dataclass
class Built:
    """A run's parts on one process."""

    data: RunData
    raw_model: torch.nn.Module
    model: torch.nn.Module  # as it trains: under DDP, compiled
    optimizer: torch.optim.Optimizer
    schedule: Schedule

    @property
    def params(self) -> int:
        return count_parameters(self.raw_model)


def build(config: Config, run_dir: Path, rt: Runtime, data: RunData | None = None) -> Built:
    """Data (unless given), model, optimizer and schedule for `config`: the trainer's and resnet-plan's."""
    t, world = config.trainer, rt.world
    try:
        data = data or build_data(
            config.data, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size_per_process, seed=t.seed,
            shard=Shard(rt.device, world.rank, world.world_size), channels_last=rt.channels_last,
            run_dir=run_dir,
        )  # fmt: skip
        raw_model = model_from_config(config.model, data.num_classes, config.data.image_size)
        memory_format = torch.channels_last if rt.channels_last else torch.contiguous_format
        raw_model = raw_model.to(rt.device, memory_format=memory_format)
        optimizer = build_optimizer(config.optim, raw_model.parameters(), rt.device)
        schedule = build_schedule(config)
    except ValueError as error:  # an impossible batch, depth, schedule or option combination
        raise UserError(str(error)) from None
    model = raw_model
    if config.model.sync_bn and world.distributed:
        # BN over the global batch; on GPUs only (checks.py refuses it elsewhere)
        model = raw_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
    if world.distributed:
        device_ids = [rt.device.index] if rt.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if rt.compile:
        model = torch.compile(model, mode=rt.compile_mode.torch_name)
    return Built(data, raw_model, model, optimizer, schedule)


def build_trainer(config: Config, built: Built, run_dir: Path, rt: Runtime, start: int = 0) -> Trainer:
    t = config.trainer
    settings = LoopSettings(
        max_iters=t.max_iters, eval_every=t.eval_every, log_every=t.log_every,
        checkpoint_every=t.checkpoint_every, nan_policy=t.nan_policy, checkpoint_dir=run_dir / "checkpoints",
        extra_state={"config": config_to_plain(config), **built.data.checkpoint_state()},
    )  # fmt: skip
    logger = RunLogger(
        run_dir, enabled=rt.world.is_main, start_iteration=start, max_iters=t.max_iters,
        progress=t.progress, synthetic=built.data.synthetic,
    )  # fmt: skip
    return Trainer(built, logger, settings, rt)


def train(
    config: Config, run_dir: Path, rt: Runtime | None = None, accepted: Callable | None = None
) -> RunSummary | None:
    """Train as `config` says on the process `rt` (None: one process) into `run_dir`; the run's summary, or
    None if it was already complete. `accepted()` runs on the main rank once a checkpoint, if any, was checked
    and loaded: from there on the run is this config's (the CLI records it in `.hydra/`)."""
    rt = rt or Runtime.resolve(config.trainer)
    t, main = config.trainer, rt.world.is_main
    rt.enter()
    seed_everything(t.seed + rt.world.rank)
    checkpoint = find_resume_checkpoint(t.resume, run_dir, config_to_plain(config))
    start = checkpoint["trainer"]["iteration"] if checkpoint else 0
    if main:
        log_loading(config, rt)
    loading = time.perf_counter()
    built = build(config, run_dir, rt)
    if checkpoint is not None:  # other data is refused before anything is written
        check_data_identity(checkpoint, built.data.identity, getattr(config.data, "root", None), run_dir)
    trainer = build_trainer(config, built, run_dir, rt, start)
    if main:
        log.info("data and model ready in %.1f s", time.perf_counter() - loading)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        if main:
            log.info("resumed from iteration %d", start)
    if accepted is not None and main:
        accepted()
    if run_complete(run_dir, start, t.max_iters):
        trainer.logger.close()
        log.info("the run in %s is already complete (%d iterations)", run_dir, start)
        return None
    if main:
        log_start(config, rt, built.params, built.data.synthetic)
    try:
        trainer.fit()
    except BaseException:
        trainer.logger.close()  # flush what was logged; the checkpoint is already on disk
        raise
    summary = RunSummary.of(config, rt, trainer.state, trainer.last_metrics, params=built.params,
                            synthetic=built.data.synthetic)  # fmt: skip
    trainer.logger.finish(summary)
    return summary
