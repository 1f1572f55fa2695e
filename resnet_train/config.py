"""Structured config schemas and the option enums they use.

The dataclasses here are the schema Hydra validates every composed config against: an unknown key, a value
of the wrong type or a value outside an enum is refused before anything runs. The enums are plain Python
types, so the model, data and engine code import them without ever seeing a Hydra config.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, List, Optional

from .errors import UserError
from .logs import register_logging


class Family(Enum):
    """Which of the paper's two network families: CIFAR (Sec. 4.2, 6n+2 layers) or ImageNet (Table 1)."""

    cifar = "cifar"
    imagenet = "imagenet"


class Shortcut(Enum):
    """The paper's shortcut options (Sec. 3.3 and 4.1)."""

    A = "A"  # identity, zero-padded extra channels, parameter-free
    B = "B"  # 1x1 projection only where dimensions change
    C = "C"  # 1x1 projection on every shortcut


# Every enum's value is its name: a config, a checkpoint and the Python API spell an option one way (Hydra
# reads an override by name).


class BottleneckStride(Enum):
    """Where a down-sampling bottleneck puts its stride: the paper's first 1x1 conv, or the 3x3 (v1_5, known
    as ResNet "v1.5")."""

    v1 = "v1"
    v1_5 = "v1_5"


class Stem(Enum):
    """The first layers: picked by input size (auto), the CIFAR 3x3/1 conv, or the ImageNet 7x7/2 + pool."""

    auto = "auto"
    cifar = "cifar"
    imagenet = "imagenet"


class DatasetName(Enum):
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    synthetic = "synthetic"
    imagefolder = "imagefolder"
    imagenet = "imagenet"


class OptimizerName(Enum):
    sgd = "sgd"
    adamw = "adamw"


class ScheduleName(Enum):
    paper_cifar = "paper_cifar"  # step decay at fixed iterations (the paper's CIFAR recipe)
    cosine = "cosine"
    step = "step"  # step decay every `step_every` iterations
    paper_imagenet = "paper_imagenet"  # divide by 10 when the validation error plateaus (Sec. 3.4)


class Loader(Enum):
    """How images reach the loop: decoded once into memory (CIFAR-sized sets of one image size), or streamed
    from files by DataLoader workers (ImageNet-sized trees of varied images)."""

    memory = "memory"
    stream = "stream"


class Augment(Enum):
    """Training augmentation of the streamed loader (the memory loader always uses the CIFAR recipe)."""

    paper = "paper"  # Sec. 3.4: shorter side random in scale_range, random crop, flip, PCA lighting
    inception = "inception"  # RandomResizedCrop + flip (not in the paper)


class Normalize(Enum):
    mean_image = "mean_image"  # the paper's per-pixel mean of the training set (Sec. 3.4)
    channel = "channel"  # per-channel mean and std of the training set (not in the paper)


class Decode(Enum):
    cpu = "cpu"  # DataLoader workers decode and augment
    gpu = "gpu"  # workers read file bytes; nvJPEG decodes and the GPU augments


class BadImage(Enum):
    skip = "skip"  # name the file in a warning, count it, and leave it out of its batch
    error = "error"  # stop with the file's name


class Crops(Enum):
    """Test-time views (Sec. 3.4 / Table 3-5)."""

    center = "center"  # resize to data.test_resize, one centre crop of data.image_size
    ten = "ten"  # four corners + centre and their flips, softmax scores averaged
    multiscale = "multiscale"  # whole image at every shorter side in data.test_scales, and its flip


class Warmup(Enum):
    """The paper's lr 0.01 warm-up for very deep CIFAR nets (Sec. 4.2): auto = on for depth >= 110."""

    auto = "auto"
    on = "on"
    off = "off"


class DeviceKind(Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(Enum):
    """The training arithmetic: fp32, the paper's, on every device (CUDA's default TF32 convolutions aside),
    or bf16 / fp16 autocast, opt-ins that change the numbers (README, Precision)."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class CompileMode(Enum):
    """torch.compile modes: reduce_overhead adds CUDA graphs; max_autotune searches kernels (slow start)."""

    default = "default"
    reduce_overhead = "reduce_overhead"
    max_autotune = "max_autotune"
    max_autotune_no_cudagraphs = "max_autotune_no_cudagraphs"

    @property
    def torch_name(self) -> str:
        """The mode as torch.compile spells it ("reduce-overhead")."""
        return self.value.replace("_", "-")


class NanPolicy(Enum):
    stop = "stop"  # stop the run, keep the last good checkpoint
    skip = "skip"  # skip the step (costs a host sync per step) and count it


@dataclass
class ModelConfig:
    family: Family = Family.cifar
    depth: int = 20
    residual: bool = True
    shortcut: Shortcut = Shortcut.A
    bottleneck_stride: BottleneckStride = BottleneckStride.v1
    stem: Stem = Stem.auto
    zero_init_residual: bool = False
    sync_bn: bool = False


@dataclass
class DataConfig:
    name: DatasetName = DatasetName.cifar10
    root: str = "./data"
    download: bool = False
    num_classes: Optional[int] = None  # set by the dataset; required for imagefolder and synthetic
    image_size: int = 32
    val_size: int = 0  # images held out of the training set to report val/error
    train_size: int = 5000  # synthetic only
    test_size: int = 1000  # synthetic only
    # The streamed loader (data=imagenet / data=imagefolder); see configs/data/imagenet.yaml.
    loader: Loader = Loader.memory
    augment: Augment = Augment.paper
    normalize: Normalize = Normalize.mean_image
    lighting: float = 0.1  # std of AlexNet's PCA lighting noise; 0 turns it off
    scale_range: List[int] = field(default_factory=lambda: [256, 480])  # shorter side, training
    test_resize: int = 256  # shorter side before the centre crop or the ten crops
    test_scales: List[int] = field(default_factory=lambda: [224, 256, 384, 480, 640])  # multiscale
    mean_samples: int = 10000  # training images averaged into the mean image
    workers: int = 8  # DataLoader worker processes per rank
    decode: Decode = Decode.cpu
    on_bad_image: BadImage = BadImage.skip


@dataclass
class OptimConfig:
    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class SchedConfig:
    name: ScheduleName = ScheduleName.paper_cifar
    milestones: List[int] = field(default_factory=lambda: [32000, 48000])
    gamma: float = 0.1
    step_every: int = 0  # sched=step: divide by 1/gamma every this many iterations
    min_lr: float = 0.0  # sched=cosine
    warmup: Warmup = Warmup.auto
    warmup_lr: float = 0.01
    warmup_until_train_error: float = 0.8
    patience: int = 5  # sched=paper_imagenet: evaluations without improvement before the lr drops
    threshold: float = 0.001  # sched=paper_imagenet: a smaller drop of the error is not an improvement


@dataclass
class TrainerConfig:
    max_iters: int = 64000
    batch_size: int = 128  # the global batch, split across devices
    eval_every: int = 1000
    eval_batch_size_per_process: int = 1000  # each process evaluates its shard in batches of this many
    log_every: int = 100
    checkpoint_every: int = 4000
    seed: int = 0
    device: DeviceKind = DeviceKind.auto
    devices: int = 1
    precision: Precision = Precision.fp32
    channels_last: Optional[bool] = None  # None: on (CUDA and CPU, engine/run.py Runtime.resolve)
    compile: Optional[bool] = None  # None: on for CUDA
    compile_mode: CompileMode = CompileMode.default
    cuda_graph: bool = False  # capture the whole training step as one CUDA graph (engine/graph.py)
    resume: str = "auto"  # auto | never | PATH of a checkpoint
    nan_policy: NanPolicy = NanPolicy.stop
    progress: bool = True


@dataclass
class EvalConfig:
    """`resnet-eval`'s own options (`eval.crops=ten`); the rest of its config comes from the checkpoint."""

    crops: Crops = Crops.center
    out: Optional[str] = None  # also write the JSON here


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# Keys a stored config (a checkpoint's, a run's .hydra/config.yaml) may hold under an earlier name.
RENAMED = {("trainer", "eval_batch_size"): "eval_batch_size_per_process"}


def current_names(stored: dict) -> dict:
    """A stored config with every key under its present name (RENAMED), so that runs written before a rename
    resume, restore and group as they did."""
    stored = {section: dict(v) if isinstance(v, dict) else v for section, v in stored.items()}
    for (section, old), new in RENAMED.items():
        values = stored.get(section)
        if isinstance(values, dict) and old in values:
            values.setdefault(new, values.pop(old))
    return stored


def config_to_plain(config: Config) -> dict:
    """The config as plain Python values (enums by name), as checkpoints store it: `torch.load(weights_only=
    True)` reads it back, and `engine.restore.config_from_plain` turns it into a `Config` again."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f">= {low}"


_POSITIVE = (lambda v: math.isfinite(v) and v > 0), "finite and > 0"
_NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0), "finite and >= 0"
_COUNT = _at_least(1)
_SIZE = _at_least(0)

# Every numeric setting and the range it must lie in: (dotted key, (predicate, wording)). Checked once, before
# anything is built or loaded, so a wrong number is one line and never a hang, a traceback or a wasted step.
# data/split.py seeds each epoch's generator with seed * 1_000_003 + epoch, which torch takes up to 2**64 - 1
# ("Overflow when unpacking long long" above): this bound leaves room for 2**63 epochs.
MAX_SEED = 2**63 // 1_000_003

RANGES: tuple[tuple[str, tuple[Callable[[Any], bool], str]], ...] = (
    ("model.depth", _COUNT),
    ("data.num_classes", ((lambda v: v is None or v >= 2), ">= 2")),
    ("data.image_size", _COUNT),
    ("data.val_size", _SIZE),
    ("data.train_size", _COUNT),
    ("data.test_size", _COUNT),
    ("data.lighting", _NON_NEGATIVE),
    ("data.scale_range", ((lambda v: len(v) == 2 and 1 <= v[0] <= v[1]), "[low, high], 1 <= low <= high")),
    ("data.test_resize", _COUNT),
    ("data.test_scales", ((lambda v: len(v) > 0 and min(v) >= 1), "a non-empty list of sizes >= 1")),
    ("data.mean_samples", _COUNT),
    ("data.workers", _SIZE),
    ("optim.lr", _POSITIVE),
    ("optim.momentum", ((lambda v: 0 <= v < 1), "in [0, 1)")),
    ("optim.weight_decay", _NON_NEGATIVE),
    ("optim.betas", ((lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)), "two values in [0, 1)")),
    ("sched.milestones", ((lambda v: all(a < b for a, b in zip([0, *v], v))), "increasing iterations > 0")),
    ("sched.gamma", ((lambda v: 0 < v <= 1), "in (0, 1]")),
    ("sched.step_every", _SIZE),
    ("sched.min_lr", _NON_NEGATIVE),
    ("sched.warmup_lr", _POSITIVE),
    ("sched.warmup_until_train_error", ((lambda v: 0 < v <= 1), "in (0, 1]")),
    ("sched.patience", _COUNT),
    ("sched.threshold", _NON_NEGATIVE),
    ("trainer.max_iters", _COUNT),
    ("trainer.batch_size", _COUNT),
    ("trainer.eval_every", _COUNT),
    ("trainer.eval_batch_size_per_process", _COUNT),
    ("trainer.log_every", _COUNT),
    ("trainer.checkpoint_every", _COUNT),
    ("trainer.seed", ((lambda v: 0 <= v <= MAX_SEED), f"in [0, {MAX_SEED}]")),
    ("trainer.devices", _COUNT),
)


def check_ranges(config: Config) -> None:
    """Refuse every numeric setting outside its range (`RANGES`), all of them in one line."""
    wrong = []
    for key, (ok, wording) in RANGES:
        group, name = key.split(".")
        value = getattr(getattr(config, group), name)
        if not ok(value):
            wrong.append(f"{key}={value} (must be {wording})")
    if wrong:
        raise UserError("out of range: " + "; ".join(wrong))


def config_dir() -> str:
    """The `configs/` folder: the checkout's top-level one, or the copy shipped inside the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "configs"
    if (checkout / "config.yaml").is_file():
        return str(checkout)
    return str(resources.files("resnet_train") / "configs")


def model_name(residual: bool, depth: int) -> str:
    """The paper's name of a net, as used for the config files and run names: "resnet56", "plain20"."""
    return f"{'resnet' if residual else 'plain'}{depth}"


def parse_model_name(name: str) -> tuple[bool, int]:
    """The inverse of `model_name`: "resnet56" -> (True, 56), "plain20" -> (False, 20)."""
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if match is None:
        raise ValueError(f"{name!r} is not a net's name (resnetN or plainN)")
    return match[1] == "resnet", int(match[2])


MAX_RUN_NAME = 160  # bytes; file systems refuse names over 255
# What a directory name may hold as written: nothing a shell expands ([ ] * ? { } ~ $ ! quotes, spaces...).
_NAME_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,=+-:@%")


def _split_overrides(overrides: str) -> list[str]:
    """`a=1,b=[2,3]` -> ["a=1", "b=[2,3]"]: Hydra's override_dirname joins items with commas, and a list
    value holds commas of its own."""
    items, depth, current = [], 0, ""
    for char in overrides:
        depth += {"[": 1, "(": 1, "{": 1, "]": -1, ")": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current] if overrides else []


def _safe_item(item: str) -> tuple[str, bool]:
    """An override with its list brackets dropped (`m=[100,200]` -> `m=100_200`) and any other character a
    shell would expand replaced by "_"; and whether such a replacement was needed."""
    key, _, value = item.partition("=")
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1].replace(",", "_")
    text = f"{key}={value}"
    return "".join(char if char in _NAME_SAFE else "_" for char in text), not set(text) <= _NAME_SAFE


def run_name(
    overrides: str, residual: bool = True, depth: int = 20, dataset: object = "cifar10", sweep: bool = False
) -> str:
    """A run directory's name: the net actually built and the dataset, then the other overrides
    (`hydra.job.override_dirname`), e.g. `plain8-cifar10,model=plain20,trainer.seed=1`.

    Stable (the same command lands in the same directory, to resume there) and unique: only what the first
    part states is left out (model.depth, model.residual, and model=/data= where they name the same net and
    dataset). No shell glob characters; a name that needed other characters replaced, or is too long, ends
    in a digest of the overrides.

    data.root names a job of a sweep (`sweep`), whose jobs may differ only in it, but not a single run: the
    same data in another place (a node's local copy) resumes the same run, and other data is refused there
    (engine/rundir.py, data identity)."""
    net = model_name(residual, depth)
    dataset = getattr(dataset, "value", dataset)  # a DatasetName from the composed config
    items = [item for item in _split_overrides(overrides) if sweep or item.partition("=")[0] != "data.root"]
    stated = {"model.depth", "model.residual"}
    rest = [
        _safe_item(item)
        for item in items
        if item.partition("=")[0] not in stated and item not in (f"model={net}", f"data={dataset}")
    ]
    name = ",".join([f"{net}-{dataset}", *(text for text, _ in rest)])
    if not any(replaced for _, replaced in rest) and len(name.encode()) <= MAX_RUN_NAME:
        return name
    digest = hashlib.sha256(",".join(items).encode()).hexdigest()[:12]
    return f"{name.encode()[: MAX_RUN_NAME - 16].decode(errors='ignore')}...{digest}"


def register_configs() -> None:
    """Register the schema and the run-name resolver; call before Hydra composes a config."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="config_schema", node=Config)
    register_logging()
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
