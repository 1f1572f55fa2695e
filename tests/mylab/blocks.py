"""A block of one's own: the pre-activation unit (He et al. 2016, "Identity Mappings in Deep Residual
Networks"), BN and ReLU before each conv, chosen with `model.block=mylab.blocks.PreActBlock`."""

import torch.nn.functional as F
from torch import nn

from resnet_train.models.blocks import BasicBlock


class PreActBlock(BasicBlock):
    """The basic block's layers and shortcut, in pre-activation order; BN sees the block's input width."""

    def __init__(self, in_channels, width, stride, shortcut, bottleneck_stride, zero_init_residual):
        super().__init__(in_channels, width, stride, shortcut, bottleneck_stride, zero_init_residual)
        self.bn1 = nn.BatchNorm2d(in_channels)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return self._add_shortcut(out, x)
