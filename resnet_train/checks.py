"""The settings only the run or the machine can refuse, each in one line before anything is loaded.

A key of another option never gets this far: Hydra refuses it while composing, and `composing_error` names
the options that have it. What is left depends on the rest of the run: a setting with no effect on this run
(a shortcut option on a plain net, a compile mode with compiling off, ...) must hold its default, so that a
chosen value is never dropped in silence; and a piece named by a dotted path must exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .config import Config, DeviceKind, config_dir, default_of, locate, override_text, own_settings, walk
from .errors import UserError


def on_cuda(device: DeviceKind) -> bool:
    """Whether trainer.device puts this run on a GPU (`auto`: when CUDA is available)."""
    return device is DeviceKind.cuda or (device is DeviceKind.auto and torch.cuda.is_available())


def group_options(group: str) -> dict[str, type]:
    """Each option of a config group (configs/GROUP/NAME.yaml) and the schema its defaults list extends."""
    from hydra.core.config_store import ConfigStore

    options = {}
    for path in sorted(Path(config_dir(), group).glob("*.yaml")):
        for entry in OmegaConf.load(path).get("defaults", []):
            if isinstance(entry, str) and entry.endswith("_schema"):
                node = ConfigStore.instance().load(f"{group}/{entry}.yaml").node
                options[path.stem] = OmegaConf.get_type(node)
    return options


def not_a_setting(key: str, schema: type | None = None) -> str:
    """`key` is no setting of the option chosen (whose schema is `schema`): name the options that have it."""
    group, _, name = key.partition(".")
    options = group_options(group)
    have = [option for option, s in options.items() if name in {f.name for f in dataclasses.fields(s)}]
    chosen = [option for option, s in options.items() if s is schema]
    line = f"{key} is not a setting of {group}={'/'.join(chosen)}" if chosen else f"{key} is not a setting"
    if have:
        return f"{line}; it is a setting of {', '.join(f'{group}={option}' for option in have)}"
    names = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {group}.{close[0]}?" if close else "`resnet-train --cfg job` lists them"
    return f"{line}; {hint}"


def composing_error(error: Exception) -> str:
    """One line for a config Hydra could not compose: for a key the chosen option's schema lacks, the options
    that have it; else Hydra's own first lines."""
    from hydra.errors import OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key and "." in cause.full_key:
        return not_a_setting(cause.full_key, cause.object_type)
    text = str(error).partition("Config search path")[0]  # Hydra's list of where it looked
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(error, OverrideParseException):  # Hydra's grammar
        override = lines[0].partition(": ")[2] or lines[0]
        return (f"cannot read the override {override}: write ~ and non-ASCII characters in a quoted value, "
                f"as in \"data.root='~/data'\"")  # fmt: skip
    if isinstance(cause, Exception):
        lines.append(str(cause).strip().splitlines()[0])
    return " ".join(lines)


def _extra_keys(config: Config) -> list[str]:
    """Keys added past the schema (`+group.key=value`), which nothing but a class of one's own reads."""
    found = []
    for group in ("model", "data", "optim", "sched", "trainer"):
        node = getattr(config, group)
        fields = {f.name: f for f in dataclasses.fields(node)}
        if "_target_" in fields and node._target_ != fields["_target_"].default:
            continue  # the class of one's own is built with them, or refuses them (config.build_target)
        found += [not_a_setting(f"{group}.{k}", type(node)) for k in own_settings(node) if k not in fields]
    return found


def _ignored(config: Config) -> list[str]:
    """One sentence for every setting that would have no effect on this run."""
    from .data import data_problems
    from .engine.distributed import world_from_env
    from .engine.schedules import uses_warmup
    from .models.resnet import has_bottlenecks

    m, s, t = config.model, config.sched, config.trainer
    compiled = t.compile if t.compile is not None else on_cuda(t.device)
    torchrun = int(os.environ["LOCAL_WORLD_SIZE"]) if "LOCAL_WORLD_SIZE" in os.environ else None
    world = world_from_env()  # torchrun's or SLURM's, else trainer.devices processes train together
    processes = world.world_size if world is not None else t.devices
    rules = [  # (keys, whether they act here, why not, where they do)
        (("model.shortcut", "model.zero_init_residual"), m.residual,
         "on a plain net (model.residual=false): it has no shortcuts or residual branches", "residual nets"),
        (("model.bottleneck_stride",), has_bottlenecks(m.family, m.depth),
         f"on a {m.family.name} net of depth {m.depth}: its blocks are basic blocks",
         "the bottleneck nets (model.family=imagenet, depth 50, 101, 152)"),
        (("model.sync_bn",), processes > 1 and on_cuda(t.device),
         "on one process or off CUDA: SyncBatchNorm shares batch statistics among GPU processes",
         "runs of several processes on GPUs (trainer.devices=N, torchrun, SLURM)"),
        (("sched.warmup_lr", "sched.warmup_until_train_error"), uses_warmup(s.warmup, m.family, m.depth),
         f"with the warm-up off for this net (sched.warmup={s.warmup.name}; auto warms up CIFAR nets of "
         "depth >= 110 only, as in Sec. 4.2)", "runs that warm up"),
        (("trainer.compile_mode",), compiled, "with compiling off (trainer.compile unset: on CUDA only)",
         "compiled runs"),
        (("trainer.devices",), torchrun in (None, t.devices),
         f"under torchrun (--nproc-per-node={torchrun}): torchrun starts the processes",
         "runs started by resnet-train itself or by SLURM"),
    ]  # fmt: skip
    values = {key: (value, f) for key, value, f in walk(config)}
    found = []
    for keys, acts, why, scope in rules:
        for key in keys:
            value, f = values[key]
            if not acts and value != default_of(f):
                found.append(f"{key}={override_text(value)} has no effect {why}; it applies to {scope}")
    return found + data_problems(config.data, on_cuda(t.device))


def check_settings(config: Config) -> None:
    """Refuse a setting added past the schema, one with no effect on this run, or a piece that does not
    exist: one line naming every one (UserError, exit 2)."""
    from .models import resolve_block, resolve_shortcut

    problems = _extra_keys(config) + _ignored(config)
    if problems:
        raise UserError(" | ".join(problems))
    resolve_shortcut(config.model.shortcut)
    if config.model.block is not None:
        resolve_block(config.model.block)
    for group in ("optim", "sched"):
        locate(getattr(config, group)._target_, f"{group}._target_")
