"""The two residual units of the paper (Sec. 3.3, Fig. 5), with one constructor signature.

Both take `(in_channels, width, stride, shortcut, bottleneck_stride, zero_init_residual)` and output
`width * expansion` channels. With `shortcut=None` the block is the plain net's: the same layers and
parameters, and no addition at all in `forward`.

Layer responses (Fig. 7: each 3x3 layer's output after BN, before the addition and the ReLU): hook the BN
modules named in the block's `response_bns` (BasicBlock: `bn1`, `bn2`; Bottleneck: `bn2`). A forward hook on
such a module receives exactly that tensor: the ReLU is functional and not in place, and the addition makes a
new tensor. `ResNet.response_layers()` lists them in layer order, with the stem's BN first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BottleneckStride
from .shortcuts import as_enum, make_shortcut


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: BN right after each conv (Sec. 3.4) makes it redundant.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def init_conv_bn_(module: nn.Module) -> None:
    """The paper's init (Sec. 3.4, He et al. 2015) for every conv and BN inside `module`. Convs: normal with
    std sqrt(2 / fan_out), fan_out = out_channels * kh * kw (the "backward" form, as in torchvision and the
    released models). BN: weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Block(nn.Module):
    expansion = 1
    response_bns: tuple[str, ...] = ()
    last_bn: str = ""

    def _finish(self, in_channels: int, out_channels: int, stride: int, shortcut, zero_init_residual: bool):
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        # register_module accepts None: a plain block has a `shortcut` attribute that is None.
        self.register_module("shortcut", make_shortcut(shortcut, in_channels, out_channels, stride))
        init_conv_bn_(self)
        if zero_init_residual and self.shortcut is not None:
            # Not in the paper (Goyal et al. 2017): each residual block starts as the identity. A plain block
            # is left alone, as zeroing it would cut the signal.
            nn.init.zeros_(getattr(self, self.last_bn).weight)

    def _add_shortcut(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return out
        return out + self.shortcut(x)  # y = F(x) + W_s x  (Eq. 1 / Eq. 2)


class BasicBlock(_Block):
    """conv3x3-BN-ReLU-conv3x3-BN, add, ReLU: the 18/34-layer and all CIFAR nets (Fig. 5 left). The stride
    sits on the first 3x3 conv; `bottleneck_stride` is only there for the shared signature."""

    expansion = 1
    response_bns = ("bn1", "bn2")
    last_bn = "bn2"

    def __init__(
        self, in_channels: int, width: int, stride: int, shortcut: str | None,
        bottleneck_stride: BottleneckStride = BottleneckStride.v1, zero_init_residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self._finish(in_channels, out_channels, stride, shortcut, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(self._add_shortcut(out, x))


class Bottleneck(_Block):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN (4x expansion), add, ReLU: the 50/101/152-layer nets (Fig. 5
    right). `width` is the 3x3 conv's width; the block outputs 4 * width channels."""

    expansion = 4
    response_bns = ("bn2",)
    last_bn = "bn3"

    def __init__(
        self, in_channels: int, width: int, stride: int, shortcut: str | None,
        bottleneck_stride: BottleneckStride = BottleneckStride.v1, zero_init_residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        out_channels = width * self.expansion
        bottleneck_stride = as_enum(BottleneckStride, bottleneck_stride, "bottleneck_stride")
        # Where the down-sampling happens. The paper's nets (v1, as the released Caffe models) stride the
        # first 1x1 conv, so 3/4 of its input positions are never read. torchvision and most later code
        # ("v1.5") stride the 3x3 instead: about +0.5% top-1 for about 5% more compute (4.09e9 vs 3.86e9
        # multiply-adds for ResNet-50).
        stride_1x1, stride_3x3 = (stride, 1) if bottleneck_stride is BottleneckStride.v1 else (1, stride)
        self.bottleneck_stride = bottleneck_stride
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self._finish(in_channels, out_channels, stride, shortcut, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(self._add_shortcut(out, x))
