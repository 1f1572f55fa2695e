"""Model size and compute: parameters, and multiply-adds as the paper counts its "FLOPs" (Table 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Every parameter, trainable or not (BN's affine weights and the fc bias included)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of the convolutions and linear layers for one image of `input_size` x `input_size` px.

    PyTorch's FlopCounterMode counts 2 FLOPs per multiply-add of a convolution or matrix product and nothing
    for BN, ReLU, pooling or the shortcut additions: half its total is the paper's Table 1 count (1.8e9 for
    ResNet-18 ... 11.3e9 for ResNet-152). One eval-mode pass on the "meta" device with stand-ins for the
    weights: shapes only, no arithmetic and no memory, and the model is left untouched.
    """
    named = [*model.named_parameters(), *model.named_buffers()]
    tensors = {name: torch.empty_like(t, device="meta") for name, t in named}
    image = torch.zeros(1, in_channels, input_size, input_size, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, tensors, (image,))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
