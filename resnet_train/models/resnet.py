"""One network class for every net of the paper; the named variants are rows of two depth tables.

`build_model(family, depth, residual, num_classes, ...)` turns a (family, depth) pair into a `ResNet`:
the CIFAR nets of Sec. 4.2 (6n+2 layers) and the ImageNet nets of Table 1. A plain net is the same stack
built with `shortcut=None`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ..config import BottleneckStride, Family, Stem
from .blocks import BasicBlock, Bottleneck, init_conv_bn_
from .shortcuts import as_enum, resolve_block

Block = type[BasicBlock] | type[Bottleneck]

# Sec. 4.2: three stages of n blocks with 16/32/64 filters on 32/16/8-pixel maps.
CIFAR_WIDTHS = (16, 32, 64)
# Table 1: conv2_x..conv5_x with base widths 64/128/256/512, and the blocks per stage of each depth.
IMAGENET_WIDTHS = (64, 128, 256, 512)
IMAGENET_DEPTHS: dict[int, tuple[Block, tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
# Stem.auto gives the CIFAR stem (3x3/1, no pool) to images up to this size; the ImageNet stem
# (7x7/2 + 3x3/2 pool) would shrink a 32x32 image to 8x8 before the first block.
CIFAR_STEM_MAX_INPUT = 64
NATURAL_INPUT_SIZE = {Family.cifar: 32, Family.imagenet: 224}


def make_stem(stem: Stem, width: int) -> nn.Sequential:
    """The layers before the first stage, as named modules (`conv`, `bn`, `relu`[, `pool`])."""
    if stem is Stem.imagenet:  # Table 1: conv1 7x7/64 stride 2, then 3x3 max pool stride 2.
        layers = OrderedDict(
            conv=nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False),
            bn=nn.BatchNorm2d(width),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
    elif stem is Stem.cifar:  # Sec. 4.2: "The first layer is 3x3 convolutions", stride 1, no pool.
        layers = OrderedDict(
            conv=nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False),
            bn=nn.BatchNorm2d(width),
            relu=nn.ReLU(),  # not in place, so a hook on `bn` sees the pre-ReLU response
        )
    else:
        raise ValueError(f"the stem must be resolved to cifar or imagenet before building; got {stem}")
    return nn.Sequential(layers)


class ResNet(nn.Module):
    """stem -> stages of blocks -> global average pool -> fc (Sec. 4.1 / 4.2, Table 1).

    Each stage's first block down-samples by 2 (except the first stage's: the ImageNet stem has already
    pooled, and the CIFAR nets start at 32 px) and widens; `shortcut=None` gives the plain twin.
    """

    def __init__(
        self, block: Block, stage_blocks: Sequence[int], stage_widths: Sequence[int], num_classes: int,
        stem: Stem, shortcut: str | None, bottleneck_stride: BottleneckStride = BottleneckStride.v1,
        zero_init_residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if len(stage_blocks) != len(stage_widths):
            raise ValueError(f"{len(stage_blocks)} stage block counts but {len(stage_widths)} stage widths")
        self.residual, self.shortcut_option = shortcut is not None, shortcut
        self.stem = make_stem(as_enum(Stem, stem, "stem"), stage_widths[0])
        init_conv_bn_(self.stem)
        stages, in_channels = [], stage_widths[0]
        options = (shortcut, bottleneck_stride, zero_init_residual)  # every block's
        for index, (count, width) in enumerate(zip(stage_blocks, stage_widths)):
            blocks = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(in_channels, width, stride, *options))
                in_channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # Sec. 3.4 says only "we initialize the weights as in [13]"; the fc layer keeps PyTorch's default
        # init (as torchvision), and the convs and BNs are initialised in `init_conv_bn_`.
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))

    def response_layers(self) -> list[tuple[str, nn.BatchNorm2d]]:
        """(name, BN) of every 3x3 conv's BN in layer order, stem first: the layers of Fig. 7. A forward hook
        on each gets the response after BN, before the addition and the ReLU. The stem's conv is 3x3 only for
        the CIFAR stem; the ImageNet stem's 7x7 conv is left out."""
        layers = []
        if self.stem.conv.kernel_size == (3, 3):
            layers.append(("stem.bn", self.stem.bn))
        for stage_index, stage in enumerate(self.stages):
            for block_index, block in enumerate(stage):
                for bn_name in block.response_bns:
                    layers.append((f"stages.{stage_index}.{block_index}.{bn_name}", getattr(block, bn_name)))
        return layers


def has_bottlenecks(family: Family, depth: int) -> bool:
    """Whether the net of `family` and `depth` has bottleneck blocks (Table 1: ImageNet 50, 101, 152)."""
    return family is Family.imagenet and IMAGENET_DEPTHS.get(depth, (None,))[0] is Bottleneck


def _resolve_stem(family: Family, stem: Stem, input_size: int | None) -> Stem:
    size = NATURAL_INPUT_SIZE[family] if input_size is None else input_size
    if family is Family.cifar:
        if stem is Stem.imagenet:
            raise ValueError("CIFAR nets always use the 3x3/1 stem (Sec. 4.2); use stem=auto or cifar")
        return Stem.cifar
    if stem is Stem.auto:
        return Stem.cifar if size <= CIFAR_STEM_MAX_INPUT else Stem.imagenet
    return stem


def _layout(family: Family, depth: int) -> tuple[Block, tuple[int, ...], tuple[int, ...]]:
    if family is Family.cifar:
        # Sec. 4.2: 6n+2 layers (the first conv, 3 stages of n two-layer blocks, the fc).
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"CIFAR nets have 6n+2 layers, n >= 1 (8, 14, 20, 26, 32, ...; the paper's: 20, 32, 44, 56, "
                f"110, 1202); got {depth}"
            )
        n = (depth - 2) // 6
        return BasicBlock, (n, n, n), CIFAR_WIDTHS
    if depth not in IMAGENET_DEPTHS:
        *rest, last = IMAGENET_DEPTHS
        raise ValueError(
            f"ImageNet nets have depth {', '.join(map(str, rest))} or {last} (Table 1); got {depth}"
        )
    block, stage_blocks = IMAGENET_DEPTHS[depth]
    return block, stage_blocks, IMAGENET_WIDTHS


def build_model(
    family: Family, depth: int, residual: bool, num_classes: int, *, shortcut: str = "A",
    block: str | None = None, bottleneck_stride: BottleneckStride = BottleneckStride.v1,
    stem: Stem = Stem.auto, input_size: int | None = None, zero_init_residual: bool = False,
) -> ResNet:  # fmt: skip
    """The paper's net of `family` and `depth`; `residual=False` gives its plain twin (shortcut ignored).
    `shortcut` names an option of models/shortcuts.py or one's own; `block` a block class of one's own
    (a dotted path; None: the paper's block for the depth).

    The stem: CIFAR nets always use the 3x3/1 conv (Sec. 4.2). ImageNet nets use the 7x7/2 conv and 3x3/2
    max pool of Table 1, except that `Stem.auto` gives them the CIFAR-style 3x3/1 stem without a pool (a
    convenience for small images, not in the paper) when `input_size` <= 64. `input_size=None` means the
    family's natural size: 32 for CIFAR, 224 for ImageNet.
    """
    family, stem = as_enum(Family, family, "family"), as_enum(Stem, stem, "stem")
    paper_block, stage_blocks, stage_widths = _layout(family, depth)
    return ResNet(
        paper_block if block is None else resolve_block(block), stage_blocks, stage_widths, num_classes,
        stem=_resolve_stem(family, stem, input_size), shortcut=shortcut if residual else None,
        bottleneck_stride=as_enum(BottleneckStride, bottleneck_stride, "bottleneck_stride"),
        zero_init_residual=zero_init_residual,
    )  # fmt: skip
