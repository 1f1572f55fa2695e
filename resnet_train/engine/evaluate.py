"""Evaluation: loss, top-1 and top-5 error over a whole split, summed across ranks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..errors import UserError
from .distributed import all_reduce_sum


@dataclass(frozen=True)
class EvalResult:
    loss: float
    error: float
    top5_error: float
    images: int | None = None  # the error's denominator: its binomial noise floor (analysis/claims.py)


def topk_wrong(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(N,) bool: the true class is not among the k best-scored. A tie goes to the lower class index (as
    torch.argmax: k=1 is exactly `scores.argmax(1) != labels`); a non-finite true score is always wrong."""
    true = scores.gather(1, labels[:, None])
    classes = torch.arange(scores.shape[1], device=scores.device)
    above = (scores > true) | ((scores == true) & (classes[None, :] < labels[:, None]))
    return (above.sum(dim=1) >= k) | ~torch.isfinite(true[:, 0])


def view_scores(model: torch.nn.Module, views, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, classes) softmax scores averaged over each image's views: (B, V, 3, H, W) (ten crops), or per
    image a list of (3, H, W) scales, each scored with its flip (multi-scale)."""

    def softmax(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return model(images).float().softmax(dim=1)

    if isinstance(views, torch.Tensor):
        batch, count = views.shape[:2]
        return softmax(views.flatten(0, 1)).view(batch, count, -1).mean(dim=1)
    per_image = [torch.stack([softmax(torch.stack([x, x.flip(-1)])).mean(dim=0) for x in s]) for s in views]
    return torch.stack([scales.mean(dim=0) for scales in per_image])


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, batches, device: torch.device, amp_dtype: torch.dtype | None = None
) -> EvalResult:
    """Mean cross-entropy, error and top-5 error of `model` over every sample of `batches`, summed across
    ranks (each holds a shard; BN statistics broadcast from rank 0 first).

    One view per image (B, 3, H, W) is scored by its logits (the centre crop, Fig. 4's bold curves). Several
    are the paper's testing protocols (Sec. 3.4), scored by the softmax averaged over the views: 10-crop
    ("the standard 10-crop testing") and the fully-convolutional multi-scale form ("average the scores at
    multiple scales"; the global average pool and fc equal the fc at every position averaged).
    """
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
    was_training = model.training
    model.eval()
    loss_sum, wrong, wrong5, count = (torch.zeros((), device=device, dtype=torch.float64) for _ in range(4))
    for images, labels in batches:
        if isinstance(images, torch.Tensor) and images.dim() != 5:  # one view per image
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                scores = model(images).float()
            loss_sum += F.cross_entropy(scores, labels, reduction="sum").double()
        else:
            scores = view_scores(model, images, amp_dtype)
            loss_sum += F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction="sum").double()
        wrong += topk_wrong(scores, labels, 1).sum()
        wrong5 += topk_wrong(scores, labels, 5).sum()
        count += len(labels)
    model.train(was_training)
    loss_sum, wrong, wrong5, count = all_reduce_sum(torch.stack([loss_sum, wrong, wrong5, count])).tolist()
    if not count:
        raise UserError("an evaluation set has no readable image (every one was left out, or it is empty)")
    return EvalResult(loss_sum / count, wrong / count, wrong5 / count, images=int(count))
