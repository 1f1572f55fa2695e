"""Every setting acts or is refused: the keys the schema does not know, and the keys that would have no effect
on this run (a streamed-loader setting on the in-memory CIFAR loader, AdamW's betas with SGD, a plateau
patience under a fixed schedule, ...), are refused before anything is loaded, one line naming each and why.

The rule: a setting that does not apply to this run must hold its default, so a value that someone chose is
never dropped in silence. "Default" is the schema's (`Config()`), except where `GROUP_DEFAULTS` names the
value a dataset fixes (the official CIFAR archives' classes and image size). The group files in configs/ set
only keys that apply to their own option, or leave inapplicable ones at the schema's default;
tests/test_applicability.py checks that every group option and experiment preset composes and passes.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch
from omegaconf import DictConfig, OmegaConf

from .config import (
    Config,
    DatasetName,
    Decode,
    DeviceKind,
    Family,
    Loader,
    OptimizerName,
    ScheduleName,
    Warmup,
)
from .errors import UserError

CIFAR = (DatasetName.cifar10, DatasetName.cifar100)
# What a dataset fixes: a different value would not change the data (the official CIFAR archives hold 32x32
# images in 10 or 100 classes, and the in-memory loader never resizes).
GROUP_DEFAULTS: dict[DatasetName, dict[str, object]] = {
    DatasetName.cifar10: {"data.num_classes": 10, "data.image_size": 32},
    DatasetName.cifar100: {"data.num_classes": 100, "data.image_size": 32},
}


def uses_warmup(warmup: Warmup, family: Family, depth: int) -> bool:
    """Sec. 4.2: the lr 0.01 warm-up is for the 110- and 1202-layer CIFAR nets (`auto`), or forced on/off."""
    return warmup is Warmup.on or (warmup is Warmup.auto and family is Family.cifar and depth >= 110)


def on_cuda(device: DeviceKind) -> bool:
    """Whether trainer.device puts this run on a GPU (`auto`: when CUDA is available)."""
    return device is DeviceKind.cuda or (device is DeviceKind.auto and torch.cuda.is_available())


def processes(config: Config) -> int:
    """The processes that train together: torchrun's or SLURM's world, else trainer.devices."""
    from .engine.distributed import world_from_env

    world = world_from_env()
    return world.world_size if world is not None else config.trainer.devices


def _torchrun_per_node() -> int | None:
    """The processes torchrun started on this node (None: not under torchrun)."""
    return int(os.environ["LOCAL_WORLD_SIZE"]) if "LOCAL_WORLD_SIZE" in os.environ else None


def _streamed(c: Config) -> bool:
    return c.data.loader is Loader.stream


def _cifar_in_memory(c: Config) -> bool:
    return c.data.name in CIFAR and c.data.loader is Loader.memory


def _cifar_archive(c: Config) -> bool:
    """CIFAR read into memory from torchvision's archive, not from an image tree (data/readers.py prefers a
    tree of train/ and test/ under data.root)."""
    from .data.build import data_root
    from .data.readers import is_image_tree

    return _cifar_in_memory(c) and not is_image_tree(data_root(c.data))


def _read_from(c: Config) -> str:
    tree = _cifar_in_memory(c)
    return f"on data={c.data.name.value} read {'from the image tree under data.root' if tree else 'streamed'}"


def _data_is(c: Config) -> str:
    return f"on data={c.data.name.value}"


def _memory(c: Config) -> str:
    return f"on data={c.data.name.value} with the in-memory loader"


STREAMED = "the streamed loader (data.loader=stream: data=imagenet, data=imagefolder)"


@dataclass(frozen=True)
class Rule:
    """`keys` act only where `applies(config)`; elsewhere they must hold their default. The refusal reads
    "{key}={value} has no effect {where(config)}: {why}; it applies to {scope}"."""

    keys: tuple[str, ...]
    applies: Callable[[Config], bool]
    where: Callable[[Config], str]
    why: str
    scope: str


# fmt: off
RULES: tuple[Rule, ...] = (
    # The data: the in-memory loader (CIFAR, synthetic, small same-size trees) against the streamed one.
    Rule(
        ("data.augment", "data.lighting", "data.scale_range"), _streamed,
        _memory, "it always pads by 4, crops 32x32 and flips, as in Sec. 4.2", STREAMED,
    ),
    Rule(
        ("data.test_resize", "data.test_scales"), _streamed, _memory,
        "in-memory sets are tested on the original images only, as in Sec. 4.2", STREAMED,
    ),
    Rule(
        ("data.mean_samples",), _streamed, _memory,
        "its statistics average every training image", STREAMED,
    ),
    Rule(
        ("data.workers", "data.decode", "data.on_bad_image"), _streamed, _memory,
        "every image is decoded once, before training, and an unreadable one stops the run", STREAMED,
    ),
    Rule(
        ("data.decode",), lambda c: c.data.decode is not Decode.gpu or on_cuda(c.trainer.device),
        lambda c: f"on a CPU run (trainer.device={c.trainer.device.name}"
        + (", no CUDA device is available)" if c.trainer.device is DeviceKind.auto else ")"),
        "nvJPEG decodes on a CUDA device", "runs on a GPU",
    ),
    Rule(
        ("data.train_size", "data.test_size"), lambda c: c.data.name is DatasetName.synthetic, _data_is,
        "a real dataset trains and tests on all of its images (data.val_size holds some out)",
        "the generated set (data=synthetic)",
    ),
    Rule(
        ("data.root",), lambda c: c.data.name is not DatasetName.synthetic, _data_is,
        "its images are generated, not read", "datasets read from files",
    ),
    Rule(
        ("data.download",), _cifar_archive, _read_from,
        "only the official CIFAR archives can be fetched", "data=cifar10 and data=cifar100 (no image tree)",
    ),
    Rule(
        ("data.num_classes", "data.image_size"), lambda c: not _cifar_archive(c),
        lambda c: f"on data={c.data.name.value} read from the official archive",
        "its images are 32x32 in 10 or 100 classes, read as they are",
        "image trees (data.root with train/ and test/), data=synthetic and data=imagefolder",
    ),
    # The net.
    Rule(
        ("model.shortcut", "model.zero_init_residual"), lambda c: c.model.residual,
        lambda c: "on a plain net (model.residual=false)", "it has no shortcuts and no residual branches",
        "residual nets",
    ),
    Rule(
        ("model.bottleneck_stride",), lambda c: _has_bottlenecks(c.model.family, c.model.depth),
        lambda c: f"on a {c.model.family.name} net of depth {c.model.depth}", "its blocks are basic blocks",
        "the bottleneck nets (model.family=imagenet, depth 50, 101, 152)",
    ),
    Rule(
        ("model.sync_bn",), lambda c: processes(c) > 1, lambda c: "on one process",
        "there are no other processes to share the batch statistics with",
        "runs of several processes (trainer.devices=N, torchrun, SLURM)",
    ),
    # The optimizer.
    Rule(
        ("optim.betas",), lambda c: c.optim.name is OptimizerName.adamw, lambda c: "with optim=sgd",
        "SGD has momentum, not Adam's betas", "optim=adamw",
    ),
    Rule(
        ("optim.momentum", "optim.nesterov"), lambda c: c.optim.name is OptimizerName.sgd,
        lambda c: "with optim=adamw", "AdamW's moments are set by optim.betas", "optim=sgd",
    ),
    # The schedule.
    Rule(
        ("sched.milestones",), lambda c: c.sched.name is ScheduleName.paper_cifar, lambda c: _sched(c),
        "only the fixed-iteration step decay reads milestones", "sched=paper_cifar",
    ),
    Rule(
        ("sched.gamma",), lambda c: c.sched.name is not ScheduleName.cosine, lambda c: _sched(c),
        "the cosine decay has no steps", "sched=paper_cifar, step and paper_imagenet",
    ),
    Rule(
        ("sched.step_every",), lambda c: c.sched.name is ScheduleName.step, lambda c: _sched(c),
        "it is the period of sched=step", "sched=step",
    ),
    Rule(
        ("sched.min_lr",), lambda c: c.sched.name is ScheduleName.cosine, lambda c: _sched(c),
        "it is where the cosine decay ends", "sched=cosine",
    ),
    Rule(
        ("sched.patience", "sched.threshold"), lambda c: c.sched.name is ScheduleName.paper_imagenet,
        lambda c: _sched(c), "only the plateau schedule watches the validation error", "sched=paper_imagenet",
    ),
    Rule(
        ("sched.warmup_lr", "sched.warmup_until_train_error"),
        lambda c: uses_warmup(c.sched.warmup, c.model.family, c.model.depth),
        lambda c: f"with the warm-up off for this net (sched.warmup={c.sched.warmup.name})",
        "sched.warmup=auto warms up CIFAR nets of depth >= 110 only, as in Sec. 4.2",
        "runs that warm up (sched.warmup=on, or auto for those nets)",
    ),
    # The trainer.
    Rule(
        ("trainer.compile_mode",),
        lambda c: c.trainer.compile if c.trainer.compile is not None else on_cuda(c.trainer.device),
        lambda c: f"with compiling off (trainer.compile={_text(c.trainer.compile)}"
        + (", on a CPU" if c.trainer.compile is None else "") + ")",
        "nothing is compiled", "compiled runs (trainer.compile=true; unset: on CUDA)",
    ),
    Rule(
        ("trainer.devices",), lambda c: _torchrun_per_node() in (None, c.trainer.devices),
        lambda c: f"under torchrun (--nproc-per-node={_torchrun_per_node()})",
        "torchrun starts the processes",
        "runs started by resnet-train itself or by SLURM (hydra/launcher=slurm: its tasks per node)",
    ),
)
# fmt: on


def _sched(c: Config) -> str:
    return f"with sched={c.sched.name.value}"


def _has_bottlenecks(family: Family, depth: int) -> bool:
    from .models.resnet import has_bottlenecks

    return has_bottlenecks(family, depth)


def _text(value: object) -> str:
    """A value as a Hydra override writes it (enums by name)."""
    if isinstance(value, Enum):
        return value.name
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


def _get(config: Config, key: str) -> object:
    group, name = key.split(".")
    return getattr(getattr(config, group), name)


def default_of(config: Config, key: str) -> object:
    """The value `key` holds when nobody sets it: the dataset's (`GROUP_DEFAULTS`), else the schema's."""
    return GROUP_DEFAULTS.get(config.data.name, {}).get(key, _get(Config(), key))


def ignored_settings(config: Config) -> list[str]:
    """One sentence for every setting that would have no effect on this run (empty: every setting acts)."""
    found = {}
    for rule in RULES:
        for key in rule.keys:
            if key in found or rule.applies(config) or _get(config, key) == default_of(config, key):
                continue
            found[key] = (
                f"{key}={_text(_get(config, key))} has no effect {rule.where(config)}: {rule.why}; "
                f"it applies to {rule.scope}"
            )
    return list(found.values())


def unknown_keys(node: DictConfig, schema: object = None, prefix: str = "") -> list[str]:
    """The dotted keys of `node` that the schema (a `Config` instance) does not have: a `+key=value`
    override adds them past the schema, and nothing would read them."""
    schema = Config() if schema is None else schema
    names = {f.name for f in dataclasses.fields(schema)}
    found = []
    for key in node:
        path = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), sorted(names), n=1)
            found.append(path + (f" (did you mean {prefix}{close[0]}?)" if close else ""))
            continue
        default = getattr(schema, key)
        if dataclasses.is_dataclass(default) and isinstance(node[key], DictConfig):
            found.extend(unknown_keys(node[key], default, f"{path}."))
    return found


def check_settings(cfg: DictConfig) -> None:
    """Refuse a composed config that holds a key the schema does not know, or a setting that would have no
    effect on this run: one line, every offending key named (UserError, exit 2)."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise UserError(
            f"not a setting: {', '.join(unknown)}; nothing reads it (`+key=value` adds a key the schema does "
            f"not have; `resnet-train --cfg job` lists the settings)"
        )
    ignored = ignored_settings(OmegaConf.to_object(cfg))
    if ignored:
        raise UserError(" | ".join(ignored))
