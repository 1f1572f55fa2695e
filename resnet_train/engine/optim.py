"""The optimizer and the learning-rate schedule, both counted in iterations (the paper's unit)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..config import OptimizerName, SchedConfig, ScheduleName


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
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """SGD as in the paper (Sec. 3.4: momentum 0.9, weight decay 1e-4 on every weight), or AdamW.

    `fused` picks the fused CUDA kernels (one launch for all parameters) instead of the per-tensor loop;
    they also read an lr held in a device tensor, as a CUDA graph needs. `capturable` keeps AdamW's step
    count on the device so its update can be captured (SGD has no such state).
    """
    implementation = {"fused": True} if fused else {"foreach": True}
    if name is OptimizerName.sgd:
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **implementation
        )
    return torch.optim.AdamW(
        params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, capturable=capturable, **implementation
    )


class LrSchedule:
    """lr as a function of the iteration, plus the paper's warm-up state.

    Warm-up (Sec. 4.2, ResNet-110/1202): "we use 0.01 to warm up the training until the training error is
    below 80% (about 400 iterations), and then go back to 0.1". The training error is the one reported at
    each logging point, so the switch happens at the first logging point below the threshold.

    Plateau (sched=paper_imagenet, Sec. 3.4: "the learning rate starts from 0.1 and is divided by 10 when the
    error plateaus"): the loop reports each evaluation's validation error (`observe_val_error`); after
    `patience` evaluations in a row that do not beat the best error by more than `threshold` (absolute), the
    lr is divided by 1/gamma and the count starts again. The best error is kept across drops.
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
        patience: int = 5,
        threshold: float = 0.001,
    ):
        if name is ScheduleName.step and step_every <= 0:
            raise ValueError("sched=step needs sched.step_every > 0 (iterations between lr drops)")
        self.name, self.base_lr, self.max_iters = name, base_lr, max_iters
        self.milestones, self.gamma = sorted(milestones), gamma
        self.step_every, self.min_lr = step_every, min_lr
        self.warmup_lr, self.warmup_until_train_error = warmup_lr, warmup_until_train_error
        self.warming_up = warmup
        self.patience, self.threshold = patience, threshold
        self.drops, self.best_val_error, self.evaluations_without_gain = 0, None, 0

    @classmethod
    def from_config(cls, sc: SchedConfig, base_lr: float, max_iters: int, *, warmup: bool) -> LrSchedule:
        """The schedule a `sched` config group describes (`warmup`: whether this net warms up)."""
        return cls(
            sc.name, base_lr, max_iters, milestones=sc.milestones, gamma=sc.gamma, step_every=sc.step_every,
            min_lr=sc.min_lr, warmup=warmup, warmup_lr=sc.warmup_lr,
            warmup_until_train_error=sc.warmup_until_train_error, patience=sc.patience,
            threshold=sc.threshold,
        )  # fmt: skip

    def lr(self, iteration: int) -> float:
        if self.warming_up:
            return self.warmup_lr
        if self.name is ScheduleName.paper_cifar:
            return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)
        if self.name is ScheduleName.step:
            return self.base_lr * self.gamma ** (iteration // self.step_every)
        if self.name is ScheduleName.paper_imagenet:
            return self.base_lr * self.gamma**self.drops
        progress = min(iteration / self.max_iters, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def observe_train_error(self, train_error: float) -> None:
        if self.warming_up and train_error < self.warmup_until_train_error:
            self.warming_up = False

    def observe_val_error(self, error: float) -> None:
        if self.name is not ScheduleName.paper_imagenet:
            return
        if self.best_val_error is None or error < self.best_val_error - self.threshold:
            self.best_val_error, self.evaluations_without_gain = error, 0
            return
        self.evaluations_without_gain += 1
        if self.evaluations_without_gain >= self.patience:
            self.drops, self.evaluations_without_gain = self.drops + 1, 0

    def state_dict(self) -> dict:
        return {
            "warming_up": self.warming_up,
            "drops": self.drops,
            "best_val_error": self.best_val_error,
            "evaluations_without_gain": self.evaluations_without_gain,
        }

    def load_state_dict(self, state: dict) -> None:
        self.warming_up = bool(state["warming_up"])
        # Checkpoints written before the plateau schedule existed hold only the warm-up flag.
        self.drops = int(state.get("drops", 0))
        self.best_val_error = state.get("best_val_error")
        self.evaluations_without_gain = int(state.get("evaluations_without_gain", 0))
