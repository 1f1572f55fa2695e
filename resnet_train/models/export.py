"""Export a trained net's weights in torchvision's layout, where torchvision has the same network.

`torchvision.models.resnet18/34/50/101/152` is one structure: Table 1's 7x7/2 stem and 3x3/2 max pool, a
projection shortcut (`downsample`) exactly where a block changes shape (option B), and for bottlenecks the
stride on the 3x3 conv ("v1.5"). A net of ours with that structure maps onto it name for name and computes
the same function; any other (options A and C, plain nets, the CIFAR stem, v1 bottlenecks) is refused.
"""

from __future__ import annotations

import re

import torch

from ..config import BottleneckStride
from .blocks import Bottleneck
from .resnet import IMAGENET_DEPTHS, IMAGENET_WIDTHS, ResNet


class NotExportable(ValueError):
    """The net has no torchvision twin; the message says why."""


def torchvision_arch(model: ResNet) -> str:
    """The torchvision constructor of a net's depth (`resnet50`), from its blocks per stage (Table 1)."""
    blocks = tuple(len(stage) for stage in model.stages)
    for depth, (block, stage_blocks) in IMAGENET_DEPTHS.items():
        if stage_blocks == blocks and type(model.stages[0][0]) is block:
            return f"resnet{depth}"
    raise NotExportable(f"no torchvision ResNet has {blocks} blocks per stage")


def torchvision_mismatch(model: ResNet) -> str | None:
    """Why `model` has no torchvision twin, or None when it has one."""
    if not model.residual:
        return "a plain net has no shortcuts, and torchvision's ResNets all have them"
    if model.stem.conv.kernel_size != (7, 7) or not hasattr(model.stem, "pool"):
        return "it has the 3x3 CIFAR stem; torchvision's ResNets have the 7x7/2 stem and 3x3/2 max pool"
    widths = tuple(stage[0].conv1.out_channels for stage in model.stages)
    blocks = tuple(len(stage) for stage in model.stages)
    layout = [(type(stage[0]), len(stage)) for stage in model.stages]
    if widths != IMAGENET_WIDTHS or not any(
        layout == [(block, count) for count in counts] for block, counts in IMAGENET_DEPTHS.values()
    ):
        return f"its stages ({blocks} blocks of widths {widths}) are not one of Table 1's nets"
    if model.shortcut_option != "B":
        return (f"it uses shortcut option {model.shortcut_option}; torchvision's ResNets have option B (a "
                f"projection only where the shape changes)")  # fmt: skip
    first = model.stages[1][0]
    if isinstance(first, Bottleneck) and first.bottleneck_stride is BottleneckStride.v1:
        return ("its bottlenecks stride the first 1x1 conv (the paper's v1); torchvision strides the 3x3 "
                "(v1.5): train with model.bottleneck_stride=v1_5")  # fmt: skip
    return None


# Our names -> torchvision's (`stem.conv` -> `conv1`, `stages.0.1.bn2` -> `layer1.1.bn2`, option B's
# projection `shortcut.conv`/`shortcut.bn` -> `downsample.0`/`downsample.1`); `fc` is the same.
_RENAMES = (
    (re.compile(r"^stem\.conv\."), "conv1."),
    (re.compile(r"^stem\.bn\."), "bn1."),
    (re.compile(r"\.shortcut\.conv\."), ".downsample.0."),
    (re.compile(r"\.shortcut\.bn\."), ".downsample.1."),
)


def _torchvision_name(name: str) -> str:
    stage = re.match(r"^stages\.(\d+)\.", name)
    if stage:
        name = f"layer{int(stage.group(1)) + 1}." + name[stage.end() :]
    for pattern, replacement in _RENAMES:
        name = pattern.sub(replacement, name)
    return name


def to_torchvision(model: ResNet) -> dict[str, torch.Tensor]:
    """`model`'s state_dict under torchvision's names: `torchvision.models.resnetNN(num_classes=K)` loads it
    with `strict=True`. Raises NotExportable for a net torchvision does not have."""
    reason = torchvision_mismatch(model)
    if reason:
        raise NotExportable(f"this net has no torchvision equivalent: {reason}")
    return {_torchvision_name(name): tensor for name, tensor in model.state_dict().items()}
