"""The paper's networks: one `ResNet` class, its blocks and shortcuts, and parameter/MAC counting."""

from ..config import model_name, parse_model_name  # the names of the nets, kept where no torch is needed
from .complexity import count_macs, count_parameters
from .resnet import ResNet, build_model
from .shortcuts import SHORTCUTS, make_shortcut, resolve_block, resolve_shortcut

__all__ = [
    "ResNet", "build_model", "model_name", "parse_model_name", "count_parameters", "count_macs",
    "make_shortcut", "resolve_block", "resolve_shortcut", "SHORTCUTS",
]  # fmt: skip
