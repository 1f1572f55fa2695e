"""One training job on one rank: turn a validated Config into model, data, optimizer and loop, and run it.

The CLI hands over the config as plain dataclasses (`resnet_train.config.Config`); from here on nothing sees
Hydra. Under DDP every rank runs this function with its own `World`.
"""

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
    NanPolicy,
    OptimConfig,
    Precision,
    TrainerConfig,
    build_target,
    config_to_plain,
    locate,
)
from ..data import RunData, Shard, build_data
from ..errors import UserError
from ..models import count_parameters, model_name
from . import distributed
from .evaluate import evaluate
from .logger import RunLogger
from .loop import LoopSettings, Trainer
from .restore import model_from_config
from .rundir import ResumePoint, check_data_identity, find_resume_checkpoint, run_complete
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
    """Whether this CPU computes bf16 in hardware (the avx512_bf16 or amx_bf16 flags of Linux's cpuinfo).
    Without them bf16 autocast is emulated in fp32 and only adds conversions."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: assume no native bf16
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def tf32_convolutions(device: torch.device) -> bool:
    """Whether fp32 convolutions on `device` run in TF32 (10-bit mantissa): PyTorch's default on CUDA GPUs of
    compute capability 8.0 (Ampere) and newer, unless torch.backends.cudnn.allow_tf32 was turned off."""
    return (
        device.type == "cuda"
        and torch.backends.cudnn.allow_tf32
        and torch.cuda.get_device_capability(device) >= (8, 0)
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model_and_optimizer(
    config: Config, num_classes: int, device: torch.device, channels_last: bool, cuda_graph: bool = False
):
    raw_model = model_from_config(config.model, num_classes, config.data.image_size)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    raw_model = raw_model.to(device, memory_format=memory_format)
    optimizer = build_optimizer(config.optim, raw_model.parameters(), device, cuda_graph)
    return raw_model, optimizer, build_schedule(config)


def build_optimizer(o: OptimConfig, params, device: torch.device, cuda_graph: bool) -> torch.optim.Optimizer:
    """The optimizer `optim._target_` names, over `params`. On CUDA the fused kernels (one launch for all
    parameters, and an lr read from a device tensor, as a CUDA graph needs), else the multi-tensor loop; a
    captured step keeps AdamW's step count on the device (`capturable`). A class of one's own gets the
    implementation flags its constructor has."""
    implementation = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if cuda_graph:
        implementation["capturable"] = True
    takes = inspect.signature(locate(o._target_, "optim._target_")).parameters
    return build_target(o, params, **{k: v for k, v in implementation.items() if k in takes})


def build_schedule(config: Config) -> Schedule:
    """The run's lr schedule, its warm-up as the net's depth decides (Sec. 4.2)."""
    m, s = config.model, config.sched
    warmup = uses_warmup(s.warmup, m.family, m.depth)
    return build_target(s, config.optim.lr, config.trainer.max_iters, warmup=warmup)


@dataclass(frozen=True)
class Runtime:
    """How a trainer config maps onto this machine: fp32 (the paper's arithmetic) on every device unless the
    config asks for bf16 or fp16; channels_last everywhere; compiled on CUDA. channels_last and compiling
    keep the arithmetic in fp32; CUDA's TF32 convolutions are the one default that does not (`precision`)."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    compile_mode: CompileMode
    cuda_graph: bool = False
    tf32_convolutions: bool = False  # fp32 convolutions on CUDA run in TF32 (cuDNN's and PyTorch's default)
    emulated_bf16: bool = False  # bf16 autocast on a CPU that has no bf16 arithmetic of its own

    @property
    def precision(self) -> str:
        """The arithmetic as the run's first log line, metrics.json and HPARAMS state it: "fp32", "fp32 (TF32
        convolutions)", "bf16" or "fp16" (autocast)."""
        if self.amp_dtype is not None:
            return {torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return "fp32 (TF32 convolutions)" if self.tf32_convolutions else "fp32"

    @classmethod
    def resolve(cls, t: TrainerConfig, world: distributed.World) -> Runtime:
        """The trainer's settings, with what is left unset (None) chosen for the device."""
        device = resolve_device(t.device, world.local_rank)
        on_cuda = device.type == "cuda"
        amp_dtype = AMP_DTYPES[t.precision]
        # fp32 everywhere by default: bf16 autocast left a 56-layer net of the degradation experiment at
        # chance where fp32 trains it (docs/precision.md). On CUDA, PyTorch runs fp32 convolutions in TF32 by
        # default (`tf32_convolutions`): kept for its speed, and stated wherever the precision is.
        # On a CPU, channels_last lets oneDNN use its blocked convolution kernels; torch.compile stays off,
        # its gain not repaying a compile of minutes (the timings: docs/benchmarks.md). Both keep fp32.
        runtime = cls(
            device,
            amp_dtype,
            True if t.channels_last is None else t.channels_last,
            on_cuda if t.compile is None else t.compile,
            t.compile_mode,
            t.cuda_graph,
            tf32_convolutions=amp_dtype is None and tf32_convolutions(device),
            emulated_bf16=device.type == "cpu" and amp_dtype is torch.bfloat16 and not cpu_has_native_bf16(),
        )
        if t.cuda_graph:
            runtime.check_cuda_graph(t, world)
        return runtime

    def check_cuda_graph(self, t: TrainerConfig, world: distributed.World) -> None:
        """A captured step may not wait for the host; refuse the settings whose step does."""
        why = None
        if self.device.type != "cuda":
            why = f"it needs a CUDA device, and this run is on {self.device}"
        elif t.nan_policy is NanPolicy.skip:
            why = "trainer.nan_policy=skip checks every loss on the host; use trainer.nan_policy=stop"
        elif self.amp_dtype is torch.float16:
            why = "fp16 loss scaling checks for overflow on the host; use trainer.precision=bf16"
        elif world.distributed:
            why = "it is not supported with DDP (more than one process)"
        elif self.compile and self.compile_mode in (CompileMode.reduce_overhead, CompileMode.max_autotune):
            why = (
                f"trainer.compile_mode={self.compile_mode.name} captures CUDA graphs of its own; use "
                f"trainer.compile_mode=default or max_autotune_no_cudagraphs"
            )
        if why:
            raise UserError(f"trainer.cuda_graph=true: {why}")


def build_run_data(config: Config, run_dir: Path, world: distributed.World, rt: Runtime) -> RunData:
    """This rank's data for `config`: its share of each training batch and of each evaluation set."""
    t = config.trainer
    try:
        return build_data(
            config.data, batch_size=t.batch_size, eval_batch_size=t.eval_batch_size_per_process, seed=t.seed,
            shard=Shard(rt.device, world.rank, world.world_size), channels_last=rt.channels_last,
            run_dir=run_dir, collectives=distributed,  # the module's all_reduce_sum and any_rank
        )  # fmt: skip
    except ValueError as error:  # an impossible batch or option combination
        raise UserError(str(error)) from None


def build_loop(
    config: Config, data: RunData, run_dir: Path, world: distributed.World, rt: Runtime, *, start: int = 0
) -> tuple[Trainer, int]:
    """Model, optimizer, schedule and loop for `config` on `data`; returns (trainer, parameter count)."""
    m, t = config.model, config.trainer
    try:
        raw_model, optimizer, schedule = build_model_and_optimizer(
            config, data.num_classes, rt.device, rt.channels_last, rt.cuda_graph
        )
    except ValueError as error:  # an impossible depth, schedule or option combination
        raise UserError(str(error)) from None
    params = count_parameters(raw_model)
    if m.sync_bn and world.distributed:
        # BN over the global batch; on GPUs only (checks.py refuses it elsewhere)
        raw_model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw_model)
    model = raw_model
    if world.distributed:
        device_ids = [rt.device.index] if rt.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if rt.compile:
        model = torch.compile(model, mode=rt.compile_mode.torch_name)
    settings = LoopSettings(
        max_iters=t.max_iters, eval_every=t.eval_every, log_every=t.log_every,
        checkpoint_every=t.checkpoint_every, amp_dtype=rt.amp_dtype, nan_policy=t.nan_policy,
        cuda_graph=rt.cuda_graph, rank_batch_size=t.batch_size // world.world_size,
        extra_state={"config": config_to_plain(config), **data.checkpoint_state()},
    )  # fmt: skip
    logger = RunLogger(
        run_dir, enabled=world.is_main, start_iteration=start, max_iters=t.max_iters,
        progress=t.progress, synthetic=data.synthetic,
    )  # fmt: skip
    trainer = Trainer(
        model, raw_model=raw_model, optimizer=optimizer, schedule=schedule, train_batches=data.train,
        eval_sets=data.evals, logger=logger, checkpoint_dir=run_dir / "checkpoints", settings=settings,
        device=rt.device, world=world, evaluate=evaluate,
    )  # fmt: skip
    return trainer, params


def build_trainer(
    config: Config, run_dir: Path, world: distributed.World, rt: Runtime, *, start: int = 0,
    resumed: ResumePoint | None = None,
) -> tuple[Trainer, RunData, int]:  # fmt: skip
    """Data, model, optimizer, schedule and loop for `config`; returns (trainer, data, parameter count).
    The data is checked against `resumed` (the checkpoint the run continues from) before anything is
    written."""
    data = build_run_data(config, run_dir, world, rt)
    if resumed is not None:
        check_data_identity(resumed, data.identity, getattr(config.data, "root", None), run_dir)
    trainer, params = build_loop(config, data, run_dir, world, rt, start=start)
    return trainer, data, params


def train(
    config: Config, run_dir: Path, world: distributed.World | None = None, accepted: Callable | None = None
) -> RunSummary | None:
    """Train as `config` says, writing into `run_dir` on the main rank; returns the run's summary (None: the
    run in `run_dir` was already complete, and its metrics.json stays as it is).
    `accepted()` runs on the main rank once the run directory's checkpoint, if any, was found, checked against
    the config and loaded: from there on the run is this config's (the CLI records it in `.hydra/`)."""
    world = world or distributed.World()
    m, d, t = config.model, config.data, config.trainer
    rt = Runtime.resolve(t, world)
    if rt.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(t.seed + world.rank)
    net = model_name(m.residual, m.depth)
    checkpoint = find_resume_checkpoint(t.resume, run_dir, config_to_plain(config))
    start = checkpoint["trainer"]["iteration"] if checkpoint else 0
    if world.is_main:
        source = getattr(d, "root", "generated images")
        log.info(
            "%s in %s on %s: loading %s (%s) and building the net ...",
            net, rt.precision, rt.device, d.name, source,
        )  # fmt: skip
        if rt.emulated_bf16:
            log.warning(
                "trainer.precision=bf16 on a CPU without native bf16 (AVX512_BF16 or AMX): emulated, with "
                "bf16's rounding but about 5x slower than fp32"
            )
    loading = time.perf_counter()
    trainer, data, params = build_trainer(config, run_dir, world, rt, start=start, resumed=checkpoint)
    if world.is_main:
        log.info("data and model ready in %.1f s", time.perf_counter() - loading)
    logger = trainer.logger
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
        if world.is_main:
            log.info("resumed from iteration %d", start)
    if accepted is not None and world.is_main:
        accepted()
    if run_complete(run_dir, start, t.max_iters):
        logger.close()
        log.info("the run in %s is already complete (%d iterations)", run_dir, start)
        return None
    if world.is_main:
        log.info(
            "%s on %s%s: %s parameters, %d iterations, batch %d on %d process(es), %s, precision %s%s",
            net, d.name, " (SYNTHETIC)" if data.synthetic else "", f"{params:,}",
            t.max_iters, t.batch_size, world.world_size, rt.device, rt.precision,
            f", compiled ({rt.compile_mode.torch_name})" if rt.compile else "",
        )  # fmt: skip
        if rt.cuda_graph:
            log.info("the training step runs as one CUDA graph")
    try:
        trainer.fit()
    except BaseException:
        logger.close()  # flush what was logged; the checkpoint is already on disk
        raise
    if trainer.graph is not None and trainer.graph.odd_batches:
        log.warning("%d batches of another size ran outside the CUDA graph", trainer.graph.odd_batches)
    summary = RunSummary.of(
        config, rt, world, trainer.state, trainer.last_metrics, params=params, synthetic=data.synthetic
    )
    logger.finish(summary)
    return summary
