"""A shortcut option of one's own: ResNet-D's down-sampling shortcut (He et al. 2019, "Bag of Tricks"),
chosen with `model.shortcut=mylab.shortcuts.avg_pool_projection`."""

from collections import OrderedDict

from torch import nn


def avg_pool_projection(in_channels, out_channels, stride):
    """Identity where the shapes match; else a 2x2 average pool (where it strides) and a 1x1 projection,
    so the projection reads every input position."""
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
    return nn.Sequential(OrderedDict(pool=pool, conv=conv, bn=nn.BatchNorm2d(out_channels)))
