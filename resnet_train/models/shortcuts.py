"""The shortcut options, A, B and C of Sec. 3.3, in one registry (`SHORTCUTS`).

An option is a callable `(in_channels, out_channels, stride) -> nn.Module`: the shortcut of one block, which
takes the block's input and returns a tensor of the block's output shape. `model.shortcut` names a registered
option or, as a dotted path, one of one's own (`model.shortcut=mylab.shortcuts.AvgPoolProjection`).
`make_shortcut` is the only code that looks at the option; a block adds what the module returns to its
residual branch without knowing which option it is.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..config import locate
from ..errors import UserError


class PadShortcut(nn.Module):
    """Option A where the shape changes: a parameter-free identity with zero-padded extra channels.

    The paper says only "identity mapping, with extra zero entries padded for increasing dimensions",
    performed with a stride of 2 across feature maps of two sizes. The layout chosen here (the usual one):

    - spatial: keep every `stride`-th row and column starting at the first, `x[:, :, ::stride, ::stride]`
      (for an odd size this gives ceil(size / stride), the same size as the 3x3/stride-2 conv with padding 1
      on the residual branch);
    - channels: the input's channels keep their order and sit in the middle; `(out - in) // 2` zero channels
      go before them and the rest (one more when the difference is odd) after them. For the CIFAR nets'
      16 -> 32 this is channels 0-7 zero, 8-23 the input, 24-31 zero.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A can only add channels; got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dimensions first: (W left, W right, H top, H bottom, C before, C after).
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class ProjectionShortcut(nn.Sequential):
    """Options B and C: a 1x1 convolution (no bias, as BN follows) and BN, with the block's stride."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        super().__init__(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_channels)))


def as_enum(enum_type, value, what: str):
    """`value` as a member of `enum_type` (a member or its exact value string); anything else is refused."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(value)
    except ValueError:
        valid = ", ".join(str(member.value) for member in enum_type)
        raise ValueError(f"{what} must be one of {valid}; got {value!r}") from None


def _same_shape(in_channels: int, out_channels: int, stride: int) -> bool:
    """Channels count as well as stride: the first stage of a bottleneck net (64 -> 256 channels at stride 1)
    changes shape, and gets a projection under option B, as in the released Caffe ResNet-50/101/152."""
    return in_channels == out_channels and stride == 1


def option_a(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity where the shapes match, else `PadShortcut` (parameter-free)."""
    if _same_shape(in_channels, out_channels, stride):
        return nn.Identity()
    return PadShortcut(in_channels, out_channels, stride)


def option_b(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity where the shapes match, else a 1x1 projection (torchvision's ResNets)."""
    if _same_shape(in_channels, out_channels, stride):
        return nn.Identity()
    return ProjectionShortcut(in_channels, out_channels, stride)


def option_c(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """A 1x1 projection on every block."""
    return ProjectionShortcut(in_channels, out_channels, stride)


SHORTCUTS = {"A": option_a, "B": option_b, "C": option_c}


def resolve_shortcut(option: str):
    """The shortcut option `model.shortcut` names: a registered one, or a dotted path to one's own."""
    if option not in SHORTCUTS and "." not in option:
        raise UserError(f"model.shortcut={option} is none of {', '.join(SHORTCUTS)} nor a dotted path")
    return SHORTCUTS.get(option) or locate(option, "model.shortcut")


def resolve_block(path: str) -> type[nn.Module]:
    """The block class `model.block` names (a dotted path): one with the signature of models/blocks.py's."""
    return locate(path, "model.block")


def make_shortcut(option: str | None, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The shortcut of one block: None for a plain net (no shortcut, no addition), else the option's."""
    return None if option is None else resolve_shortcut(option)(in_channels, out_channels, stride)
