"""Model size and compute: parameters, and multiply-adds as the paper counts its "FLOPs" (Table 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def count_parameters(model: nn.Module) -> int:
    """Every parameter, trainable or not (BN's affine weights and the fc bias included)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-adds of the convolutions and linear layers for one image of `input_size` x `input_size` px.

    Counted by forward hooks on one eval-mode forward pass of a zero image: a conv costs
    output elements * in_channels / groups * kh * kw, a linear layer in_features * out_features. BN, ReLU,
    pooling and the shortcut additions are left out, as in the paper's Table 1 (1.8e9 for ResNet-18 ... 11.3e9
    for ResNet-152). The pass runs on the "meta" device with stand-ins for the weights: shapes only, no
    arithmetic and no memory, and the model is left untouched. It costs about 2 s once per process (PyTorch
    loads its meta kernels) and a few ms per layer, less than a real CPU pass for the ImageNet nets at 224 px.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += (output.numel() // module.out_features) * module.in_features * module.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    named = [*model.named_parameters(), *model.named_buffers()]
    tensors = {name: torch.empty_like(t, device="meta") for name, t in named}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(
                model, tensors, (torch.zeros(1, in_channels, input_size, input_size, device="meta"),)
            )
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total
