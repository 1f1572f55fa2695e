"""The paper's ImageNet testing protocols: scores averaged over several views of each image (Sec. 3.4).

- centre crop: one view, the in-loop validation error (Fig. 4's bold curves);
- 10-crop ("for comparison studies we adopt the standard 10-crop testing"): four corners and centre of the
  256-resized image, and of its flip; the ten softmax score vectors are averaged;
- fully-convolutional multi-scale ("we adopt the fully-convolutional form as in [41, 13], and average the
  scores at multiple scales (images are resized such that the shorter side is in {224, 256, 384, 480,
  640})"): the net runs on the whole resized image. Its global average pool followed by the fc layer equals
  the fc layer applied at every position of the last feature map, then averaged: the fully-convolutional
  form with its score map averaged. Each scale is also scored on its flip; the softmax scores of all
  2 x scales views are averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .evaluate import EvalResult, topk_wrong


def _softmax(model: torch.nn.Module, images: torch.Tensor, amp_dtype: torch.dtype | None) -> torch.Tensor:
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return model(images).float().softmax(dim=1)


def view_scores(model: torch.nn.Module, views, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, classes) softmax scores averaged over each image's views.

    `views`: (B, 3, H, W) one view; (B, V, 3, H, W) V views of one size (ten crops); or, for multi-scale, a
    list (one per image) of lists (one per scale) of (3, H, W) tensors, each scored with its flip.
    """
    if isinstance(views, torch.Tensor):
        if views.dim() == 4:
            return _softmax(model, views, amp_dtype)
        batch, count = views.shape[:2]
        return _softmax(model, views.flatten(0, 1), amp_dtype).view(batch, count, -1).mean(dim=1)
    scores = []
    for scales in views:
        per_scale = [_softmax(model, torch.stack([x, x.flip(-1)]), amp_dtype).mean(dim=0) for x in scales]
        scores.append(torch.stack(per_scale).mean(dim=0))
    return torch.stack(scores)


@torch.no_grad()
def evaluate_views(
    model: torch.nn.Module, batches, device: torch.device, amp_dtype: torch.dtype | None = None
) -> EvalResult:
    """Loss (cross-entropy of the averaged scores), top-1 and top-5 error over every image of `batches`.

    Single process: resnet-eval evaluates on one device.
    """
    was_training = model.training
    model.eval()
    loss_sum = wrong = wrong5 = count = 0.0
    for views, labels in batches:
        scores = view_scores(model, views, amp_dtype)
        loss_sum += float(F.nll_loss(scores.clamp_min(1e-12).log(), labels, reduction="sum"))
        wrong += float(topk_wrong(scores, labels, 1).sum())
        wrong5 += float(topk_wrong(scores, labels, 5).sum())
        count += len(labels)
    model.train(was_training)
    if not count:
        raise ValueError("no image was evaluated")
    return EvalResult(loss_sum / count, wrong / count, wrong5 / count)
