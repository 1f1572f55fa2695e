"""The optimizer and the learning-rate schedule, both counted in iterations (the paper's unit)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..config import OptimizerName, ScheduleName


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: OptimizerName,
    lr: float,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 1e-4,
    betas: tuple[float, float] = (0.9, 0.999),
    fused: bool = False,
) -> torch.optim.Optimizer:
    """SGD as in the paper (Sec. 3.4: momentum 0.9, weight decay 1e-4 on every weight), or AdamW.

    `fused` picks the fused CUDA kernels (one launch for all parameters) instead of the per-tensor loop.
    """
    implementation = {"fused": True} if fused else {"foreach": True}
    if name is OptimizerName.sgd:
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **implementation
        )
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **implementation)


class LrSchedule:
    """lr as a function of the iteration, plus the paper's warm-up state.

    Warm-up (Sec. 4.2, ResNet-110/1202): "we use 0.01 to warm up the training until the training error is
    below 80% (about 400 iterations), and then go back to 0.1". The training error is the one reported at
    each logging point, so the switch happens at the first logging point below the threshold.
    """

    def __init__(
        self,
        name: ScheduleName,
        base_lr: float,
        max_iters: int,
        *,
        milestones: Iterable[int] = (),
        gamma: float = 0.1,
        step_every: int = 0,
        min_lr: float = 0.0,
        warmup: bool = False,
        warmup_lr: float = 0.01,
        warmup_until_train_error: float = 0.8,
    ):
        if name is ScheduleName.step and step_every <= 0:
            raise ValueError("sched=step needs sched.step_every > 0 (iterations between lr drops)")
        self.name, self.base_lr, self.max_iters = name, base_lr, max_iters
        self.milestones, self.gamma = sorted(milestones), gamma
        self.step_every, self.min_lr = step_every, min_lr
        self.warmup_lr, self.warmup_until_train_error = warmup_lr, warmup_until_train_error
        self.warming_up = warmup

    def lr(self, iteration: int) -> float:
        if self.warming_up:
            return self.warmup_lr
        if self.name is ScheduleName.paper_cifar:
            return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.name is ScheduleName.step:
            return self.base_lr * self.gamma ** (iteration // self.step_every)
        progress = min(iteration / self.max_iters, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def observe_train_error(self, train_error: float) -> None:
        if self.warming_up and train_error < self.warmup_until_train_error:
            self.warming_up = False

    def state_dict(self) -> dict:
        return {"warming_up": self.warming_up}

    def load_state_dict(self, state: dict) -> None:
        self.warming_up = bool(state["warming_up"])
