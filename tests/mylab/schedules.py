"""Schedules of one's own: subclasses of resnet_train's `Schedule`, chosen with `sched._target_=...`."""

import math

from resnet_train.engine.schedules import Schedule


class LinearToZero(Schedule):
    """The lr falls on a straight line from the base lr to `end_lr` at trainer.max_iters."""

    uses_max_iters = True  # the line is spread over the whole run: a resume may not change its length

    def __init__(self, base_lr, max_iters, *, end_lr=0.0, **warmup):
        super().__init__(base_lr, max_iters, **warmup)
        self.end_lr = end_lr

    def decayed(self, iteration):
        return self.base_lr + (self.end_lr - self.base_lr) * min(iteration / self.max_iters, 1.0)


class WarmupCosine(Schedule):
    """A linear warm-up over `warmup_iters`, then half a cosine down to zero (not the paper's warm-up)."""

    uses_max_iters = True

    def __init__(self, base_lr, max_iters, *, warmup_iters=100, **warmup):
        super().__init__(base_lr, max_iters, **warmup)
        self.warmup_iters = warmup_iters

    def decayed(self, iteration):
        if iteration < self.warmup_iters:
            return self.base_lr * (iteration + 1) / self.warmup_iters
        progress = (iteration - self.warmup_iters) / max(1, self.max_iters - self.warmup_iters)
        return self.base_lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
