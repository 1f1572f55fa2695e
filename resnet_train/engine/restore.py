"""One way back from a checkpoint to what it holds (`restore`: the config, the net with its weights, the
class names and the input statistics), for every tool that uses stored weights; and the net of a model
config (`model_from_config`), for the trainer too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config, ModelConfig, config_from_plain
from ..data import InputStats, Normalizer
from ..errors import UserError
from ..models import build_model, model_name
from .checkpoint import WEIGHTS_KEYS, check_structure, load_checkpoint


def model_from_config(m: ModelConfig, num_classes: int, input_size: int) -> torch.nn.Module:
    return build_model(
        m.family, m.depth, m.residual, num_classes, shortcut=m.shortcut, block=m.block,
        bottleneck_stride=m.bottleneck_stride, stem=m.stem, input_size=input_size,
        zero_init_residual=m.zero_init_residual,
    )  # fmt: skip


@dataclass
class Restored:
    config: Config
    model: torch.nn.Module  # on the CPU, in eval mode, weights loaded strictly
    classes: list[str]  # what each output means
    stats: InputStats  # what the inputs were normalised with
    iteration: int | None

    def normalizer(self, device: torch.device | str = "cpu") -> Normalizer:  # uint8 images in, net inputs out
        return Normalizer(self.stats, self.config.data.normalize, device)


def restore(
    checkpoint: dict | str | Path, overrides: list[str] = (), schema: type | None = None,
    source: str | None = None,
) -> Restored:
    """Rebuild what `checkpoint` (loaded, or its path) holds, its config changed by `overrides`."""
    if not isinstance(checkpoint, dict):
        source = source or str(checkpoint)
        checkpoint = load_checkpoint(Path(checkpoint).expanduser())
    source = source or "the checkpoint"
    check_structure(checkpoint, source, WEIGHTS_KEYS)
    config = config_from_plain(checkpoint["config"], overrides, schema)
    classes = list(checkpoint["input"]["classes"])
    stats = InputStats.from_state_dict(checkpoint["input"]["stats"])
    try:
        model = model_from_config(config.model, len(classes), config.data.image_size)
    except ValueError as error:  # an impossible net (a depth that is not 6n+2, ...)
        raise UserError(str(error)) from None
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError:  # missing, unexpected or misshapen weights: hundreds of lines from torch
        raise UserError(_misfit(checkpoint["config"], overrides, source)) from None
    iteration = checkpoint.get("trainer", {}).get("iteration")
    return Restored(config, model.eval(), classes, stats, iteration)


def _misfit(stored: dict, overrides: list[str], source: str) -> str:
    """One line for weights that do not fit the (overridden) config's net: its own net and the overrides."""
    m = config_from_plain(stored).model
    net = f"{model_name(m.residual, m.depth)} ({m.family.value} family"
    net += f", shortcut {m.shortcut})" if m.residual else ")"
    keys = [item.partition("=")[0].lstrip("+") for item in overrides]
    changed = [
        item for item, key in zip(overrides, keys) if key.startswith("model.") or key == "data.image_size"
    ]
    if changed:
        return f"{source} holds a {net}; {' '.join(changed)} does not fit its weights: drop the override"
    return f"{source} holds a {net}, but its weights do not fit that net (a damaged or hand-edited file)"


def load_model(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The net, in eval mode on `device`; its inputs: `restore(path).normalizer(device)(uint8_images)`."""
    return restore(path).model.to(device)
