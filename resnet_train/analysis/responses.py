"""Layer responses (Fig. 7): the std of each 3x3 layer's output, after BN and before the addition and the
ReLU, over a test set.

For each layer: the std of ALL elements of its response over the whole set (every image, channel and
position pooled, divisor N, not N - 1), in eval mode (BN uses its running statistics), accumulated in
float64 with Chan et al.'s pairwise update, which does not lose precision to cancellation as a plain sum of
squares would. The paper does not say which std it plots; this one measures how far a layer moves the
signal, which is its point (ResNets' responses are smaller than plain nets').
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import torch
from torch import nn


@dataclass
class RunningStd:
    """Population std of a stream of tensors, in float64 (Chan, Golub and LeVeque's parallel update)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64).flatten()
        n = values.numel()
        batch_mean = values.mean().item()
        batch_m2 = ((values - batch_mean) ** 2).sum().item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else float("nan")


@dataclass
class LayerResponse:
    index: int  # 1-based, in the order of the forward pass
    name: str  # the BN module's name inside the model
    std: float


@dataclass
class ResponseResult:
    """One model's responses, with what identifies it."""

    source: str  # the checkpoint path
    model: str
    label: str
    residual: bool
    dataset: str
    images: int
    layers: list[LayerResponse]

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def layer_responses(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], max_images: int | None = None
) -> tuple[list[LayerResponse], int]:
    """The std of each of `model.response_layers()` (every 3x3 conv's BN) over `batches` (or their first
    `max_images` images), and the number of images seen; ValueError if there are none."""
    layers = model.response_layers()
    running = [RunningStd() for _ in layers]
    handles = [
        bn.register_forward_hook(lambda module, inputs, output, acc=acc: acc.update(output))
        for (_, bn), acc in zip(layers, running)
    ]
    was_training = model.training
    model.eval()  # BN normalises with its running statistics, as at test time
    seen = 0
    try:
        for images, _ in batches:
            if max_images is not None:
                images = images[: max_images - seen]
            if len(images) == 0:
                break
            model(images)
            seen += len(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    if seen == 0:
        raise ValueError("no images to measure the responses on")
    return [
        LayerResponse(i + 1, name, acc.std) for i, ((name, _), acc) in enumerate(zip(layers, running))
    ], seen


def checkpoint_responses(
    checkpoint: dict, source: str, *, data_root: str | None = None, split: str = "test",
    max_images: int | None = None, batch_size: int = 500, device: torch.device | str = "cpu",
) -> ResponseResult:  # fmt: skip
    """Fig. 7's numbers for one checkpoint, on the `split` of its run's data (`data_root`: another root)."""
    from ..data import build_eval_set
    from ..engine.restore import restore
    from ..models import model_name
    from .runs import display_name

    restored = restore(checkpoint, [f"data.root={data_root}"] if data_root else [], source=source)
    m, d = restored.config.model, restored.config.data
    device = torch.device(device)
    evals = build_eval_set(
        d, stats=restored.stats, classes=restored.classes, split=split, batch_size=batch_size, device=device
    )
    layers, seen = layer_responses(restored.model.to(device), evals.batches, max_images)
    name = model_name(m.residual, m.depth)
    label = display_name(name, m.residual, m.depth)
    return ResponseResult(source, name, label, m.residual, d.name, seen, layers)
