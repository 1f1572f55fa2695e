"""The lr schedules (engine/schedules.py) and the optimizer a config names (engine/run.py build_optimizer)."""

import pytest
import torch
from clitools import compose_config
from omegaconf import OmegaConf

from resnet_train.config import SGDConfig
from resnet_train.engine.run import build_optimizer
from resnet_train.engine.schedules import SCHEDULES, Cosine, PaperCifar, Plateau, Step


def test_paper_cifar_schedule_divides_by_ten_at_32k_and_48k():
    schedule = PaperCifar(0.1, 64000, milestones=[32000, 48000])
    assert [schedule.lr(i) for i in (0, 31999, 32000, 48000, 63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001, 0.001]
    )


def test_warmup_holds_0_01_until_train_error_below_80_percent_and_is_kept_in_the_state():
    schedule = PaperCifar(0.1, 64000, warmup=True)
    assert schedule.lr(0) == pytest.approx(0.01)
    schedule.observe_train_error(0.85)
    assert schedule.lr(300) == pytest.approx(0.01)
    schedule.observe_train_error(0.79)
    assert schedule.lr(400) == pytest.approx(0.1)
    schedule.observe_train_error(0.95)  # once over, the warm-up never comes back
    assert schedule.lr(500) == pytest.approx(0.1)
    restored = PaperCifar(0.1, 64000, warmup=True)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(500) == pytest.approx(0.1)


def test_cosine_and_step_schedules():
    cosine = Cosine(0.1, 1000, min_lr=0.0)
    assert [cosine.lr(i) for i in (0, 500, 1000)] == pytest.approx([0.1, 0.05, 0.0])
    step = Step(0.1, 1000, step_every=300)
    assert [step.lr(i) for i in (0, 299, 300, 600)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_paper_imagenet_divides_by_ten_on_a_plateau_and_keeps_its_state():
    schedule = Plateau(0.1, 1000, gamma=0.1, patience=2, threshold=0.01)
    for error in (0.60, 0.50, 0.495, 0.49):  # 0.495 and 0.49 are not 0.01 better than 0.50
        schedule.observe_val_error(error)
    assert schedule.lr(10) == pytest.approx(0.01)
    restored = Plateau(0.1, 1000, patience=2, threshold=0.01)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr(10) == pytest.approx(0.01) and restored.best_val_error == 0.50
    for error in (0.30, 0.31, 0.30):
        restored.observe_val_error(error)
    assert restored.lr(10) == pytest.approx(0.001)
    fixed = PaperCifar(0.1, 1000, milestones=[5])
    fixed.observe_val_error(0.9)  # a schedule that does not follow the evaluations ignores them
    assert fixed.lr(0) == 0.1


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_option_of_the_sched_group_builds_its_registered_class(name):
    from resnet_train.engine.run import build_schedule

    config = OmegaConf.to_object(compose_config(f"sched={name}"))
    assert isinstance(config.sched, SCHEDULES[name])
    schedule = build_schedule(config)
    assert type(schedule).__name__ == config.sched._target_.rpartition(".")[2]
    assert schedule.lr(0) == pytest.approx(0.1)


def test_only_the_cosine_depends_on_max_iters_and_only_the_plateau_on_evaluations():
    assert [c.uses_max_iters for c in (PaperCifar, Step, Cosine, Plateau)] == [False, False, True, False]
    assert [c.uses_evaluations for c in (PaperCifar, Step, Cosine, Plateau)] == [False, False, False, True]


def test_optimizers_carry_the_paper_settings_and_the_implementation_of_the_device():
    weights = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer(SGDConfig(), weights, torch.device("cpu"))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["foreach"]) == (0.1, 0.9, 1e-4, True)
    adamw = OmegaConf.to_object(compose_config("optim=adamw")).optim
    built = build_optimizer(adamw, weights, torch.device("cpu"))
    assert isinstance(built, torch.optim.AdamW) and tuple(built.param_groups[0]["betas"]) == (0.9, 0.999)
