"""Layer responses (Fig. 7): the standard deviation of each 3x3 layer's output, after BN and before the
addition and the ReLU, over a test set.

The definition used here: for each layer, the standard deviation of ALL elements of its response over the
whole set (every image, channel and position pooled into one population, divisor N, not N - 1), with the
model in eval mode, so BN uses its running statistics. It is accumulated batch by batch in float64 with
Chan et al.'s pairwise update of (count, mean, sum of squared deviations), which does not lose precision to
cancellation as a plain sum of squares would. The paper does not say which std it plots; this one measures
how far a layer moves the signal, which is its point (ResNets' responses are smaller than plain nets').
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from ..config import BottleneckStride, DatasetName, Family, Shortcut, Stem


@dataclass
class RunningStd:
    """Population std of a stream of tensors, in float64 (Chan, Golub and LeVeque's parallel update)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64).flatten()
        n = values.numel()
        if n == 0:
            return
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
    layers: list[LayerResponse] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "model": self.model,
            "label": self.label,
            "residual": self.residual,
            "dataset": self.dataset,
            "images": self.images,
            "layers": [{"index": layer.index, "name": layer.name, "std": layer.std} for layer in self.layers],
        }


@torch.no_grad()
def layer_responses(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], max_images: int | None = None
) -> tuple[list[LayerResponse], int]:
    """The std of each response layer of `model` (its `response_layers()`: every 3x3 conv's BN) over
    `batches` (or their first `max_images` images); returns the layers and the number of images seen."""
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


def _enum(enum_type, value):
    """A config value stored in a checkpoint: by name (as the engine stores enums) or by value."""
    try:
        return enum_type[value]
    except KeyError:
        return enum_type(value)


def model_from_checkpoint(checkpoint: dict, num_classes: int) -> nn.Module:
    """Rebuild the checkpoint's net from its stored config and load its weights (strictly)."""
    from ..models import build_model

    m, d = checkpoint["config"]["model"], checkpoint["config"]["data"]
    model = build_model(
        _enum(Family, m["family"]), m["depth"], m["residual"], num_classes,
        shortcut=_enum(Shortcut, m["shortcut"]),
        bottleneck_stride=_enum(BottleneckStride, m["bottleneck_stride"]), stem=_enum(Stem, m["stem"]),
        input_size=d["image_size"], zero_init_residual=m["zero_init_residual"],
    )  # fmt: skip
    state = checkpoint["model"]
    # A checkpoint of a compiled or DDP-wrapped model may carry their prefixes; the weights are the same.
    for prefix in ("_orig_mod.", "module."):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    model.load_state_dict(state)
    return model


def evaluation_batches(
    checkpoint: dict, *, data_root: str | None = None, split: str = "test", batch_size: int = 500,
    device: torch.device | str = "cpu",
):  # fmt: skip
    """The evaluation set the checkpoint's run used (its data config; `data_root` replaces the stored root),
    normalised with the training set's statistics as in training. Returns (batches, num_classes)."""
    from ..data import EvalBatches, Normalizer, load_splits

    d = checkpoint["config"]["data"]
    splits = load_splits(
        _enum(DatasetName, d["name"]), data_root or d["root"], download=False, num_classes=d["num_classes"],
        image_size=d["image_size"], val_size=d["val_size"], train_size=d["train_size"],
        test_size=d["test_size"],
    )  # fmt: skip
    subset = splits.val if split == "val" else splits.test
    if subset is None:
        raise ValueError(
            "the checkpoint's run held out no validation set (data.val_size=0); use the test split"
        )
    normalize = Normalizer.fit(splits.train.images)
    return EvalBatches(subset, normalize, batch_size, device=torch.device(device)), splits.num_classes


def checkpoint_responses(
    checkpoint: dict, source: str, *, data_root: str | None = None, split: str = "test",
    max_images: int | None = None, batch_size: int = 500, device: torch.device | str = "cpu",
) -> ResponseResult:  # fmt: skip
    """Fig. 7's numbers for one checkpoint, on the data its run was tested on."""
    from ..models import model_name
    from .runs import display_name

    m = checkpoint["config"]["model"]
    batches, num_classes = evaluation_batches(
        checkpoint, data_root=data_root, split=split, batch_size=batch_size, device=device
    )
    model = model_from_checkpoint(checkpoint, num_classes).to(device)
    layers, seen = layer_responses(model, batches, max_images)
    return ResponseResult(
        source=source,
        model=model_name(m["residual"], m["depth"]),
        label=display_name(model_name(m["residual"], m["depth"]), m["residual"], m["depth"]),
        residual=bool(m["residual"]),
        dataset=str(checkpoint["config"]["data"]["name"]),
        images=seen,
        layers=layers,
    )
