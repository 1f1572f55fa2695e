"""The learning-rate schedules, counted in iterations (the paper's unit): each one a class with its settings'
schema beside it, in one registry (`SCHEDULES`). `sched._target_` names the class a run builds, so a class of
one's own (a subclass of `Schedule`) is chosen from the command line: `sched._target_=mylab.LinearToZero`.

Every schedule has the paper's warm-up (Sec. 4.2, ResNet-110/1202): "we use 0.01 to warm up the training
until the training error is below 80% (about 400 iterations), and then go back to 0.1". The training error
is the one reported at each logging point, so the switch happens at the first logging point below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List

from ..config import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, Family, Role, Warmup, locate, setting

_INCREASING = (lambda v: all(a < b for a, b in zip([0, *v], v))), "increasing iterations > 0"


class Schedule:
    """lr as a function of the iteration, after the warm-up; what a checkpoint keeps of it
    (`state_dict`). Two class attributes say what else the curve depends on, so a resume refuses to change
    it: `uses_max_iters` (the curve is spread over trainer.max_iters) and `uses_evaluations` (the lr follows
    the evaluations, so trainer.eval_every steers it)."""

    uses_max_iters = False
    uses_evaluations = False

    def __init__(
        self, base_lr: float, max_iters: int, *, warmup: bool = False, warmup_lr: float = 0.01,
        warmup_until_train_error: float = 0.8,
    ):  # fmt: skip
        self.base_lr, self.max_iters, self.warming_up = base_lr, max_iters, warmup
        self.warmup_lr, self.warmup_until_train_error = warmup_lr, warmup_until_train_error

    def lr(self, iteration: int) -> float:
        return self.warmup_lr if self.warming_up else self.decayed(iteration)

    def decayed(self, iteration: int) -> float:  # the lr once the warm-up is over
        raise NotImplementedError

    def observe_train_error(self, train_error: float) -> None:
        if self.warming_up and train_error < self.warmup_until_train_error:
            self.warming_up = False

    def observe_val_error(self, error: float) -> None:  # a schedule with `uses_evaluations` acts on it
        pass

    def state_dict(self) -> dict:
        return {"warming_up": self.warming_up}

    def load_state_dict(self, state: dict) -> None:
        self.warming_up = bool(state["warming_up"])


class PaperCifar(Schedule):
    """Step decay at fixed iterations: Sec. 4.2 divides the lr by 10 at 32k and 48k iterations."""

    def __init__(self, base_lr: float, max_iters: int, *, milestones=(32000, 48000), gamma=0.1, **warmup):
        super().__init__(base_lr, max_iters, **warmup)
        self.milestones, self.gamma = sorted(milestones), gamma

    def decayed(self, iteration: int) -> float:
        return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)


class Step(Schedule):
    """Divide the lr by 1/gamma every `step_every` iterations."""

    def __init__(self, base_lr: float, max_iters: int, *, step_every: int, gamma: float = 0.1, **warmup):
        super().__init__(base_lr, max_iters, **warmup)
        self.step_every, self.gamma = step_every, gamma

    def decayed(self, iteration: int) -> float:
        return self.base_lr * self.gamma ** (iteration // self.step_every)


class Cosine(Schedule):
    """Half a cosine from the base lr down to `min_lr` over the whole run (not in the paper)."""

    uses_max_iters = True

    def __init__(self, base_lr: float, max_iters: int, *, min_lr: float = 0.0, **warmup):
        super().__init__(base_lr, max_iters, **warmup)
        self.min_lr = min_lr

    def decayed(self, iteration: int) -> float:
        progress = min(iteration / self.max_iters, 1.0)
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class Plateau(Schedule):
    """Sec. 3.4: "the learning rate starts from 0.1 and is divided by 10 when the error plateaus". After
    `patience` evaluations in a row that do not beat the best validation error by more than `threshold`
    (absolute), the lr is divided by 1/gamma and the count starts again; the best error is kept across
    drops."""

    uses_evaluations = True

    def __init__(
        self, base_lr: float, max_iters: int, *, gamma: float = 0.1, patience: int = 5,
        threshold: float = 0.001, **warmup,
    ):  # fmt: skip
        super().__init__(base_lr, max_iters, **warmup)
        self.gamma, self.patience, self.threshold = gamma, patience, threshold
        self.drops, self.best_val_error, self.evaluations_without_gain = 0, None, 0

    def decayed(self, iteration: int) -> float:
        return self.base_lr * self.gamma**self.drops

    def observe_val_error(self, error: float) -> None:
        if self.best_val_error is None or error < self.best_val_error - self.threshold:
            self.best_val_error, self.evaluations_without_gain = error, 0
            return
        self.evaluations_without_gain += 1
        if self.evaluations_without_gain >= self.patience:
            self.drops, self.evaluations_without_gain = self.drops + 1, 0

    def state_dict(self) -> dict:
        keys = ("drops", "best_val_error", "evaluations_without_gain")
        return {**super().state_dict(), **{key: getattr(self, key) for key in keys}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.drops, self.best_val_error = int(state["drops"]), state["best_val_error"]
        self.evaluations_without_gain = int(state["evaluations_without_gain"])


@dataclass
class ScheduleConfig:
    """What every schedule takes: the class (`_target_`) and the warm-up (`warmup=auto`: on for the CIFAR
    nets of depth >= 110, as in Sec. 4.2)."""

    _target_: str = setting("resnet_train.engine.schedules.Schedule", Role.numbers)
    warmup: Warmup = setting(Warmup.auto, Role.numbers)
    warmup_lr: float = setting(0.01, Role.numbers, POSITIVE)
    warmup_until_train_error: float = setting(0.8, Role.numbers, FRACTION)


@dataclass
class PaperCifarConfig(ScheduleConfig):
    _target_: str = setting("resnet_train.engine.schedules.PaperCifar", Role.numbers)
    milestones: List[int] = setting([32000, 48000], Role.numbers, _INCREASING, iterations=True)
    gamma: float = setting(0.1, Role.numbers, FRACTION)


@dataclass
class StepConfig(ScheduleConfig):
    _target_: str = setting("resnet_train.engine.schedules.Step", Role.numbers)
    step_every: int = setting(150120, Role.numbers, COUNT, iterations=True)
    gamma: float = setting(0.1, Role.numbers, FRACTION)
    warmup: Warmup = setting(Warmup.off, Role.numbers)


@dataclass
class CosineConfig(ScheduleConfig):
    _target_: str = setting("resnet_train.engine.schedules.Cosine", Role.numbers)
    min_lr: float = setting(0.0, Role.numbers, NON_NEGATIVE)


@dataclass
class PlateauConfig(ScheduleConfig):
    _target_: str = setting("resnet_train.engine.schedules.Plateau", Role.numbers)
    gamma: float = setting(0.1, Role.numbers, FRACTION)
    patience: int = setting(5, Role.numbers, COUNT)
    threshold: float = setting(0.001, Role.numbers, NON_NEGATIVE)
    warmup: Warmup = setting(Warmup.off, Role.numbers)


# The `sched` config group's options: configs/sched/NAME.yaml extends NAME_schema.
SCHEDULES = {
    "paper_cifar": PaperCifarConfig,
    "step": StepConfig,
    "cosine": CosineConfig,
    "paper_imagenet": PlateauConfig,
}


def schedule_class(target: str) -> type[Schedule]:
    return locate(target, "sched._target_")


def uses_warmup(warmup: Warmup, family: Family, depth: int) -> bool:
    """Sec. 4.2: the lr 0.01 warm-up is for the 110- and 1202-layer CIFAR nets (`auto`), or forced on/off."""
    return warmup is Warmup.on or (warmup is Warmup.auto and family is Family.cifar and depth >= 110)
