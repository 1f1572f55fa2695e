"""The config schemas Hydra validates every composed config against (an unknown key, a wrong type or value
is refused before anything runs), one per option of a group, and the option enums they use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, List, Optional

from omegaconf import MISSING

from .errors import UserError


class Role(Enum):
    """What changing a setting changes. Resume, seed grouping, resnet-plan's timing and run naming derive
    their rules from the roles of the schema's fields (`keys_with`)."""

    experiment = "experiment"  # the numbers a run computes, and what a step costs (depth, batch, data)
    numbers = "numbers"  # the numbers a run computes, not what a step costs (lr, seed, schedule)
    cost = "cost"  # only how fast a run goes: the same numbers (compiling, memory layout, workers)
    watch = "watch"  # only how a run is watched and saved (logging, evaluation, checkpoints)
    files = "files"  # only where files are (data.root, trainer.resume)


Check = tuple[Callable[[Any], bool], str]  # a range: (predicate, its wording)


def setting(
    default: Any, role: Role = Role.experiment, check: Check | None = None, named: bool = True,
    iterations: bool = False,
) -> Any:  # fmt: skip
    """A schema field: its default, role, range (`check`), whether it names a run's directory when given
    (`named`), and whether it counts iterations (resnet-plan moves such milestones with a fitted length)."""
    metadata = {"role": role, "check": check, "named": named, "iterations": iterations}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


POSITIVE: Check = (lambda v: math.isfinite(v) and v > 0), "finite and > 0"
NON_NEGATIVE: Check = (lambda v: math.isfinite(v) and v >= 0), "finite and >= 0"
FRACTION: Check = (lambda v: 0 < v <= 1), "in (0, 1]"
COUNT: Check = (lambda v: v >= 1), ">= 1"
SIZE: Check = (lambda v: v >= 0), ">= 0"


def options(name: str, members: str) -> type[Enum]:
    """An option enum whose every value is its name: a config, a checkpoint and the Python API spell an
    option one way (Hydra reads an override by name)."""
    return Enum(name, {member: member for member in members.split()}, module=__name__, qualname=name)


Family = options("Family", "cifar imagenet")  # CIFAR (Sec. 4.2, 6n+2 layers) or ImageNet (Table 1)
# Where a down-sampling bottleneck puts its stride: the paper's first 1x1 conv, or the 3x3 (ResNet "v1.5").
BottleneckStride = options("BottleneckStride", "v1 v1_5")
# The first layers: picked by input size (auto), the CIFAR 3x3/1 conv, or the ImageNet 7x7/2 + pool.
Stem = options("Stem", "auto cifar imagenet")
Loader = options("Loader", "memory stream")
# The streamed loader's augmentation (the memory loader's is always CIFAR's): paper (Sec. 3.4: shorter side
# random in scale_range, random crop, flip, PCA lighting) or inception (RandomResizedCrop + flip).
Augment = options("Augment", "paper inception")
# mean_image: the paper's per-pixel mean of the training set (Sec. 3.4); channel: per-channel mean and std.
Normalize = options("Normalize", "mean_image channel")
# cpu: DataLoader workers decode and augment; gpu: workers read file bytes, nvJPEG decodes, the GPU augments.
Decode = options("Decode", "cpu gpu")
# skip: name the file in a warning, count it, leave it out of its batch; error: stop with the file's name.
BadImage = options("BadImage", "skip error")
# Test-time views (Sec. 3.4, Tables 3-5): one centre crop of the data.test_resize image; four corners + centre
# and their flips, softmax scores averaged; the whole image at every shorter side in data.test_scales + flip.
Crops = options("Crops", "center ten multiscale")
Warmup = options("Warmup", "auto on off")  # Sec. 4.2's lr 0.01 warm-up; auto: on for depth >= 110
DeviceKind = options("DeviceKind", "auto cpu cuda")
Precision = options("Precision", "fp32 bf16 fp16")  # fp32: the paper's; bf16/fp16 autocast change numbers
# stop: stop the run, keep the last good checkpoint; skip: skip the step (a host sync per step), count it.
NanPolicy = options("NanPolicy", "stop skip")


class CompileMode(Enum):  # torch.compile's modes
    default = "default"
    reduce_overhead = "reduce_overhead"
    max_autotune = "max_autotune"
    max_autotune_no_cudagraphs = "max_autotune_no_cudagraphs"

    @property
    def torch_name(self) -> str:  # "reduce-overhead"
        return self.value.replace("_", "-")


@dataclass
class ModelConfig:
    family: Family = setting(Family.cifar)
    depth: int = setting(20, check=COUNT)
    residual: bool = setting(True)
    shortcut: str = setting("A")  # A, B, C (models/shortcuts.py) or a dotted path to a class of one's own
    block: Optional[str] = setting(None)  # None: the paper's blocks; or a dotted path to a block class
    bottleneck_stride: BottleneckStride = setting(BottleneckStride.v1)
    stem: Stem = setting(Stem.auto)
    zero_init_residual: bool = setting(False)
    sync_bn: bool = setting(False)


@dataclass
class DataConfig:
    """What every dataset has. `name`: an entry of data/datasets.py, or a dotted path to one's own."""

    name: str = setting("cifar10")
    num_classes: Optional[int] = setting(None, check=((lambda v: v >= 2), ">= 2"))  # fixed by an archive
    image_size: int = setting(32, check=COUNT)
    val_size: int = setting(0, check=SIZE)  # images held out of the training set to report val/error
    normalize: Normalize = setting(Normalize.mean_image)
    loader: ClassVar[Loader] = Loader.memory


@dataclass
class SyntheticData(DataConfig):  # generated images: nothing is read
    name: str = setting("synthetic")
    num_classes: Optional[int] = setting(10, check=((lambda v: v >= 2), ">= 2"))
    train_size: int = setting(5000, check=COUNT)
    test_size: int = setting(1000, check=COUNT)


@dataclass
class ArchiveData(DataConfig):
    """A torchvision dataset held in memory (CIFAR-10/100): its archive, or a train/ and test/ tree."""

    root: str = setting("./data", Role.files)
    download: bool = setting(False, Role.files, named=False)  # only the archive can be fetched


@dataclass
class FolderData(DataConfig):
    """An ImageFolder tree (train/, and test/ or val/), streamed with ImageNet's augmentation and test views
    (Sec. 3.4), or decoded into memory when its images have one size."""

    name: str = setting("imagefolder")
    root: str = setting(MISSING, Role.files)
    image_size: int = setting(224, check=COUNT)
    loader: Loader = setting(Loader.stream)
    augment: Augment = setting(Augment.paper)
    lighting: float = setting(0.1, check=NON_NEGATIVE)  # std of AlexNet's PCA lighting noise; 0: off
    scale_range: List[int] = setting(
        [256, 480], check=((lambda v: len(v) == 2 and 1 <= v[0] <= v[1]), "[low, high], 1 <= low <= high")
    )  # the shorter side, training
    test_resize: int = setting(256, check=COUNT)  # the shorter side before the centre crop or the ten crops
    test_scales: List[int] = setting(
        [224, 256, 384, 480, 640], check=((lambda v: len(v) > 0 and min(v) >= 1), "sizes >= 1, at least one")
    )  # eval.crops=multiscale
    mean_samples: int = setting(10000, check=COUNT)  # training images averaged into the mean image
    workers: int = setting(8, Role.cost, SIZE)  # DataLoader worker processes per rank
    decode: Decode = setting(Decode.cpu)
    on_bad_image: BadImage = setting(BadImage.skip)


DATA_SCHEMAS = {"archive": ArchiveData, "folder": FolderData, "synthetic": SyntheticData}


@dataclass
class OptimConfig:
    """What every optimizer takes; `_target_` is its class (`optim._target_=mylab.Lion` for one's own)."""

    _target_: str = setting(MISSING)
    lr: float = setting(0.1, Role.numbers, POSITIVE)
    weight_decay: float = setting(1e-4, Role.numbers, NON_NEGATIVE)


@dataclass
class SGDConfig(OptimConfig):
    """SGD as in the paper (Sec. 3.4: momentum 0.9, weight decay 1e-4 on every weight)."""

    _target_: str = setting("torch.optim.SGD")
    momentum: float = setting(0.9, Role.numbers, ((lambda v: 0 <= v < 1), "in [0, 1)"))
    nesterov: bool = setting(False, Role.numbers)


@dataclass
class AdamWConfig(OptimConfig):
    _target_: str = setting("torch.optim.AdamW")
    lr: float = setting(1e-3, Role.numbers, POSITIVE)
    weight_decay: float = setting(0.05, Role.numbers, NON_NEGATIVE)
    betas: List[float] = setting(
        [0.9, 0.999], Role.numbers, ((lambda v: len(v) == 2 and all(0 <= b < 1 for b in v)), "two in [0, 1)")
    )


OPTIMIZERS = {"sgd": SGDConfig, "adamw": AdamWConfig}

# data/split.py seeds each epoch's generator with seed * 1_000_003 + epoch, which torch takes up to 2**64 - 1
# ("Overflow when unpacking long long" above): this bound leaves room for 2**63 epochs.
MAX_SEED = 2**63 // 1_000_003


@dataclass
class TrainerConfig:
    max_iters: int = setting(64000, Role.numbers, COUNT)
    batch_size: int = setting(128, check=COUNT)  # the global batch, split across devices
    eval_every: int = setting(1000, Role.watch, COUNT)
    eval_batch_size_per_process: int = setting(1000, Role.cost, COUNT)  # each process's evaluation batch
    log_every: int = setting(100, Role.watch, COUNT)
    checkpoint_every: int = setting(4000, Role.watch, COUNT)
    seed: int = setting(0, Role.numbers, ((lambda v: 0 <= v <= MAX_SEED), f"in [0, {MAX_SEED}]"))
    device: DeviceKind = setting(DeviceKind.auto)
    devices: int = setting(1, check=COUNT, named=False)
    precision: Precision = setting(Precision.fp32)
    channels_last: Optional[bool] = setting(None, Role.cost)  # None: on (engine/run.py Runtime.resolve)
    compile: Optional[bool] = setting(None, Role.cost)  # None: on for CUDA
    compile_mode: CompileMode = setting(CompileMode.default, Role.cost)
    resume: str = setting("auto", Role.files, named=False)  # auto | never | PATH of a checkpoint
    # skip checks every loss on the host; stop does not survive a non-finite loss, so neither changes a
    # trajectory that goes on
    nan_policy: NanPolicy = setting(NanPolicy.stop, Role.cost)
    progress: bool = setting(True, Role.watch, named=False)


@dataclass
class EvalConfig:
    crops: Crops = Crops.center
    out: Optional[str] = None  # also write the JSON here


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = MISSING
    optim: OptimConfig = MISSING
    sched: Any = MISSING  # one of engine/schedules.py's schemas
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def schemas() -> dict[str, list[type]]:
    from .engine.schedules import SCHEDULES

    return {
        "model": [ModelConfig], "data": list(DATA_SCHEMAS.values()), "optim": list(OPTIMIZERS.values()),
        "sched": list(SCHEDULES.values()), "trainer": [TrainerConfig],
    }  # fmt: skip


def schema_field(key: str) -> dataclasses.Field | None:
    """The field of a dotted key ("sched.milestones") in any schema of its group, or None."""
    group, _, name = key.lstrip("+~").partition(".")
    fields = (f for schema in schemas().get(group, []) for f in dataclasses.fields(schema))
    return next((f for f in fields if f.name == name), None)


def role_of(key: str) -> Role:
    """The role of a dotted key; a key no schema knows (one's own class's) is taken to change the numbers."""
    f = schema_field(key)
    return f.metadata.get("role", Role.experiment) if f is not None else Role.experiment


def own_settings(node: Any) -> dict:  # with the keys `+group.key=value` added (set as attributes)
    return dict(vars(node))


def locate(path: str, key: str) -> Any:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UserError(f"{key}={path} names nothing that can be imported ({error})") from None


def build_target(node: Any, *args: Any, **given: Any) -> Any:
    """The object `node._target_` names, built with `args`, the node's settings and `given`. A class of one's
    own is not given a setting it does not take while it holds the schema's default, and refused otherwise."""
    target, settings = node._target_, own_settings(node)
    del settings["_target_"]
    cls = locate(target, "_target_")
    defaults = {f.name: f for f in dataclasses.fields(node)}
    if target != defaults["_target_"].default:
        takes = {
            name for k in cls.__mro__ if "__init__" in vars(k)
            for name, p in inspect.signature(k.__init__).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }  # fmt: skip
        for name in [name for name in settings if name not in takes]:
            default = defaults.get(name)
            if default is None or settings[name] != default_of(default):
                raise UserError(f"{target} does not take the setting {name}={settings[name]}")
            del settings[name]
    return cls(*args, **{**settings, **given})


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def override_text(value: Any) -> str:
    """A value as an override writes it: enums by name, null, true/false, [a,b]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(override_text, value)) + "]"
    return str(getattr(value, "name", value))


def walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            yield from walk(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f


def config_to_plain(config: Config) -> dict:
    """The config as plain values (enums by name), as checkpoints store it (`config_from_plain`: back)."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)
    for group in ("optim", "sched"):  # the settings of a class of one's own
        node = getattr(config, group)
        plain[group].update({k: v for k, v in own_settings(node).items() if k not in plain[group]})
    return plain


def schema_of(group: str, stored: dict | None) -> type:
    """The schema a stored group's settings were written from: one that has every stored key, the one whose
    `_target_` or `name` is the stored one first; else the largest all stored (a class of one's own)."""
    options, stored = schemas()[group], stored or {}
    names = [{f.name: f for f in dataclasses.fields(s)} for s in options]
    having = [s for s, fields in zip(options, names) if set(stored) <= set(fields)]
    for s, fields in zip(options, names):
        identity = next((k for k in ("_target_", "name") if k in fields and k in stored), None)
        if s in having and identity and fields[identity].default == stored[identity]:
            return s
    if having:
        return having[0]
    fitting = [s for s, fields in zip(options, names) if set(fields) <= set(stored)]
    if not fitting:
        raise UserError(f"the stored {group} settings fit no schema of this version: {sorted(stored)}")
    return max(fitting, key=lambda s: len(dataclasses.fields(s)))


def config_from_plain(stored: dict, overrides: list[str] = (), schema: type | None = None) -> Any:
    """A stored config with `overrides` (key=value), validated by each group's schema (`schema`: the whole
    config's, resnet-eval's adds `eval`)."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        base = OmegaConf.structured(schema or Config)
        with open_dict(base):
            for group in ("data", "optim", "sched"):
                base[group] = OmegaConf.structured(schema_of(group, stored.get(group)))
        for group in ("optim", "sched"):  # the settings of a class of one's own
            with open_dict(base[group]):
                for key in set(stored.get(group, {})) - set(base[group]):
                    base[group][key] = stored[group][key]
        merged = OmegaConf.merge(base, stored, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise UserError(f"bad override or stored config: {str(error).splitlines()[0]}") from None


def check_ranges(config: Config) -> None:
    """Refuse every setting outside its range (its field's `check`), all in one line."""
    wrong = [
        f"{key}={value} (must be {f.metadata['check'][1]})"
        for key, value, f in walk(config)
        if f.metadata.get("check") and value is not None and not f.metadata["check"][0](value)
    ]
    if wrong:
        raise UserError("out of range: " + "; ".join(wrong))


def config_dir() -> str:
    """The checkout's `configs/`, or the copy shipped inside the wheel."""
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
    """`a=1,b=[2,3]` -> ["a=1", "b=[2,3]"] (Hydra's override_dirname joins items with commas)."""
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
    """An override with list brackets dropped (`m=[100,200]` -> `m=100_200`) and other characters a shell
    would expand replaced by "_"; and whether one was."""
    key, _, value = item.partition("=")
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1].replace(",", "_")
    text = f"{key}={value}"
    return "".join(char if char in _NAME_SAFE else "_" for char in text), not set(text) <= _NAME_SAFE


def _named(key: str) -> bool:
    f = schema_field(key)
    return f is None or f.metadata.get("named", True)


def run_name(
    overrides: str, residual: bool = True, depth: int = 20, dataset: str = "cifar10", sweep: bool = False
) -> str:
    """A run directory's name: the net built and the dataset, then the other overrides, e.g.
    `plain8-cifar10,model=plain20,trainer.seed=1`. Stable (the same command resumes there) and unique: only
    what the first part states is left out. A name that needed characters replaced, or is too long, ends in
    a digest of the overrides (and the seed). data.root names only a sweep's jobs (`sweep`): the same data
    elsewhere resumes a single run."""
    net = model_name(residual, depth)
    items = [
        item for item in _split_overrides(overrides)
        if (sweep or item.partition("=")[0] != "data.root") and _named(item.partition("=")[0])
    ]  # fmt: skip
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
    # The seed stays readable at the end: the seeds of one sweep would otherwise differ in the digest alone.
    seed = next((f",{text}" for text, _ in rest if text.startswith("trainer.seed=")), "")
    head = name.encode()[: MAX_RUN_NAME - 16 - len(seed)].decode(errors="ignore")
    return f"{head}...{digest}{seed}"


def register_configs() -> None:
    """Register the schemas and the run-name resolver, before Hydra composes a config."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from .engine.schedules import SCHEDULES

    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, options in (("data", DATA_SCHEMAS), ("optim", OPTIMIZERS), ("sched", SCHEDULES)):
        for name, schema in options.items():
            store.store(group=group, name=f"{name}_schema", node=schema)
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
