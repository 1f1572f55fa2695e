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


def view_scores(model: torch.nn.Module, views, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, classes) softmax scores averaged over each image's views: (B, V, 3, H, W), V views of one size
    (ten crops); or, for multi-scale, a list (one per image) of lists (one per scale) of (3, H, W) tensors,
    each scored with its flip."""

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
    """Mean cross-entropy, error and top-5 error (fractions) of `model` over every sample of `batches`.

    A batch of one view per image (B, 3, H, W) is scored by its logits: the centre crop, the in-loop
    error of Fig. 4's bold curves. Several views per image are the paper's testing protocols (Sec. 3.4),
    scored by the softmax averaged over the views (`view_scores`) and the loss taken of that average:
    - 10-crop ("for comparison studies we adopt the standard 10-crop testing"): four corners and centre of
      the 256-resized image, and of its flip;
    - fully-convolutional multi-scale ("we adopt the fully-convolutional form as in [41, 13], and average
      the scores at multiple scales"): the net runs on the whole resized image, whose global average pool
      followed by the fc layer equals the fc layer at every position averaged; each scale with its flip.

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
        raise ValueError("no image was evaluated")
    return EvalResult(loss_sum / count, wrong / count, wrong5 / count, images=int(count))
