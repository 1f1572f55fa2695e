import pytest
import torch

from resnet_train.config import OptimizerName, ScheduleName
from resnet_train.engine.optim import LrSchedule, build_optimizer


def test_paper_cifar_schedule_divides_by_ten_at_32k_and_48k():
    schedule = LrSchedule(ScheduleName.paper_cifar, 0.1, 64000, milestones=[32000, 48000])
    assert schedule.lr(0) == pytest.approx(0.1)
    assert schedule.lr(31999) == pytest.approx(0.1)
    assert schedule.lr(32000) == pytest.approx(0.01)
    assert schedule.lr(48000) == pytest.approx(0.001)
    assert schedule.lr(63999) == pytest.approx(0.001)


def test_warmup_holds_0_01_until_train_error_below_80_percent():
    schedule = LrSchedule(ScheduleName.paper_cifar, 0.1, 64000, milestones=[32000, 48000], warmup=True)
    assert schedule.lr(0) == pytest.approx(0.01)
    schedule.observe_train_error(0.85)
    assert schedule.lr(300) == pytest.approx(0.01)
    schedule.observe_train_error(0.79)
    assert schedule.lr(400) == pytest.approx(0.1)
    schedule.observe_train_error(0.95)  # once over, the warm-up never comes back
    assert schedule.lr(500) == pytest.approx(0.1)
    restored = LrSchedule(ScheduleName.paper_cifar, 0.1, 64000, warmup=True)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(500) == pytest.approx(0.1)


def test_cosine_and_step_schedules():
    cosine = LrSchedule(ScheduleName.cosine, 0.1, 1000, min_lr=0.0)
    assert (
        cosine.lr(0) == pytest.approx(0.1) and cosine.lr(500) == pytest.approx(0.05) and cosine.lr(1000) == 0
    )
    step = LrSchedule(ScheduleName.step, 0.1, 1000, step_every=300)
    assert [step.lr(i) for i in (0, 299, 300, 600)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="step_every"):
        LrSchedule(ScheduleName.step, 0.1, 1000)


def test_optimizers_carry_the_paper_settings():
    weights = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(weights, OptimizerName.sgd, 0.1)
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 1e-4)
    assert isinstance(build_optimizer(weights, OptimizerName.adamw, 1e-3), torch.optim.AdamW)


def test_paper_imagenet_divides_by_ten_on_a_plateau_and_keeps_its_state():
    schedule = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000, gamma=0.1, patience=2, threshold=0.01)
    for error in (0.60, 0.50, 0.495, 0.49):  # 0.495 and 0.49 are not 0.01 better than 0.50
        schedule.observe_val_error(error)
    assert schedule.lr(10) == pytest.approx(0.01)
    restored = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000, patience=2, threshold=0.01)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(10) == pytest.approx(0.01) and restored.best_val_error == 0.50
    for error in (0.30, 0.31, 0.30):
        restored.observe_val_error(error)
    assert restored.lr(10) == pytest.approx(0.001)
    old = LrSchedule(ScheduleName.paper_imagenet, 0.1, 1000)
    old.load_state_dict({"warming_up": False})  # a checkpoint from before the plateau schedule
    assert old.lr(0) == 0.1
    step = LrSchedule(ScheduleName.paper_cifar, 0.1, 1000, milestones=[5])
    step.observe_val_error(0.9)  # other schedules ignore the val error
    assert step.lr(0) == 0.1
