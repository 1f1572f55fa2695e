"""Evaluation: loss and error over a whole split, summed across ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .distributed import all_reduce_sum


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches, device: torch.device, amp_dtype: torch.dtype | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and error (a fraction) of `model` over every sample of `batches`.

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
    count = torch.zeros((), device=device, dtype=torch.float64)
    for images, labels in batches:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
        wrong += (logits.argmax(dim=1) != labels).sum()
        count += len(labels)
    model.train(was_training)
    loss_sum, wrong, count = all_reduce_sum(torch.stack([loss_sum, wrong, count])).tolist()
    return loss_sum / count, wrong / count
