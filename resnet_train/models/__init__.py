"""The paper's networks: one `ResNet` class, its blocks and shortcuts, and parameter/MAC counting."""

from .complexity import count_macs, count_parameters
from .resnet import ResNet, build_model, model_name
from .shortcuts import make_shortcut

__all__ = ["ResNet", "build_model", "model_name", "count_parameters", "count_macs", "make_shortcut"]
