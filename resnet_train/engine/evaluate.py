"""Evaluation: loss, top-1 and top-5 error over a whole split, summed across ranks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .distributed import all_reduce_sum


@dataclass(frozen=True)
class EvalResult:
    """Mean loss, top-1 and top-5 error (fractions), read by name, and how many images they are over."""

    loss: float
    error: float
    top5_error: float
    images: int | None = None  # the error's denominator: its binomial noise floor (analysis/claims.py)


def topk_wrong(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) bool: the true class is not among the k best-scored classes.

    Tie rule: a class ranks above the true class if its score is higher, or equal with a lower class index,
    the order torch.argmax uses, so k=1 gives exactly `scores.argmax(1) != labels`. A non-finite true score
    is always wrong. With k >= the number of classes nothing is wrong.
    """
    true = scores.gather(1, labels[:, None])
    classes = torch.arange(scores.shape[1], device=scores.device)
    above = (scores > true) | ((scores == true) & (classes[None, :] < labels[:, None]))
    return (above.sum(dim=1) >= k) | ~torch.isfinite(true[:, 0])


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches, device: torch.device, amp_dtype: torch.dtype | None = None
) -> EvalResult:
    """Mean cross-entropy, error and top-5 error (fractions) of `model` over every sample of `batches`.

    Under DDP each rank holds a disjoint shard; the sums are added across ranks, so the result is the error
    over the whole split. BN running statistics are taken from rank 0 first, so every rank evaluates the
    same network.
    """
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    wrong = torch.zeros((), device=device, dtype=torch.float64)
    wrong5 = torch.zeros((), device=device, dtype=torch.float64)
    count = torch.zeros((), device=device, dtype=torch.float64)
    for images, labels in batches:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
        wrong += (logits.argmax(dim=1) != labels).sum()
        wrong5 += topk_wrong(logits.float(), labels, 5).sum()
        count += len(labels)
    model.train(was_training)
    loss_sum, wrong, wrong5, count = all_reduce_sum(torch.stack([loss_sum, wrong, wrong5, count])).tolist()
    return EvalResult(loss_sum / count, wrong / count, wrong5 / count, images=int(count))
