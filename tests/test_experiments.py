"""The experiment presets (configs/experiment/): each composes, and resolves to the paper's settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from resnet_train.config import config_dir, parse_model_name, register_configs

EXPERIMENTS = Path(config_dir()) / "experiment"
CIFAR_FIG6 = [
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
]
CIFAR_TABLE6 = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]


def compose_config(*overrides: str, hydra_config: bool = False):
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def sweep_params(experiment: str) -> dict[str, list[str]]:
    """The sweep an experiment file defines, as `-m experiment=NAME` alone would run it."""
    cfg = compose_config(f"experiment={experiment}", hydra_config=True)
    return {key: str(value).split(",") for key, value in cfg.hydra.sweeper.params.items()}


def assert_paper_cifar_recipe(cfg):
    assert cfg.data.name == "cifar10" and cfg.data.val_size == 0  # final runs: 50k train, 10k test
    assert cfg.trainer.batch_size == 128 and cfg.trainer.max_iters == 64000
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9
    assert cfg.optim.weight_decay == 1e-4
    assert cfg.sched._target_.endswith(".PaperCifar") and list(cfg.sched.milestones) == [32000, 48000]
    assert cfg.sched.gamma == 0.1 and cfg.sched.warmup.value == "auto" and cfg.sched.warmup_lr == 0.01


@pytest.mark.parametrize(
    ("experiment", "models"), [("cifar_plain_vs_resnet", CIFAR_FIG6), ("cifar_table6", CIFAR_TABLE6)]
)
def test_cifar_experiments_sweep_the_papers_nets_with_its_recipe(experiment, models):
    assert sweep_params(experiment) == {"model": models}
    assert_paper_cifar_recipe(compose_config(f"experiment={experiment}"))
    for model in models:  # every job of the sweep, as Hydra composes it
        cfg = compose_config(f"experiment={experiment}", f"model={model}")
        assert_paper_cifar_recipe(cfg)
        assert cfg.model.family.value == "cifar"
        assert (cfg.model.residual, cfg.model.depth) == parse_model_name(model)
        assert cfg.model.shortcut == "A"


def assert_paper_imagenet_recipe(cfg):
    assert cfg.data.name == "imagenet" and cfg.data.image_size == 224 and cfg.data.num_classes == 1000
    assert list(cfg.data.scale_range) == [256, 480] and cfg.data.lighting == 0.1
    assert cfg.trainer.batch_size == 256 and cfg.trainer.max_iters == 600000
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9
    assert cfg.optim.weight_decay == 1e-4
    assert cfg.sched._target_.endswith(".Plateau") and cfg.sched.gamma == 0.1
    assert cfg.model.family.value == "imagenet" and cfg.model.bottleneck_stride.value == "v1"


def test_cifar_cpu_experiment_is_fig6_cut_to_an_hour_two_jobs_side_by_side():
    models = ["plain56", "resnet56", "plain20", "resnet20"]  # the long runs first
    assert sweep_params("cifar_plain_vs_resnet_cpu") == {"model": models}
    cfg = compose_config("experiment=cifar_plain_vs_resnet_cpu")
    t = cfg.trainer
    assert (t.max_iters, list(cfg.sched.milestones)) == (800, [400, 600])  # lr / 10 at 1/2 and 3/4
    assert t.batch_size == 128 and cfg.optim.lr == 0.1 and cfg.model.shortcut == "A"
    launcher = compose_config("experiment=cifar_plain_vs_resnet_cpu", hydra_config=True).hydra.launcher
    assert launcher.n_jobs == 2 and launcher._target_.endswith("JoblibLauncher")


def test_imagenet_plain_vs_resnet_is_table2():
    assert sweep_params("imagenet_plain_vs_resnet") == {
        "model": ["plain18", "plain34", "resnet18", "resnet34"]
    }
    for model in ["plain18", "plain34", "resnet18", "resnet34"]:
        cfg = compose_config("experiment=imagenet_plain_vs_resnet", f"model={model}")
        assert_paper_imagenet_recipe(cfg)
        assert (cfg.model.residual, cfg.model.depth) == parse_model_name(model)
        assert cfg.model.shortcut == "A"  # Table 2: option A, so plain and residual nets match in size


def test_imagenet_shortcuts_is_table3_a_b_c():
    assert sweep_params("imagenet_shortcuts") == {"model.shortcut": ["A", "B", "C"]}
    for option in "ABC":
        cfg = compose_config("experiment=imagenet_shortcuts", f"model.shortcut={option}")
        assert_paper_imagenet_recipe(cfg)
        assert cfg.model.depth == 34 and cfg.model.residual and cfg.model.shortcut == option


def test_imagenet_deep_is_resnet_50_101_152_with_option_b():
    assert sweep_params("imagenet_deep") == {"model": ["resnet50", "resnet101", "resnet152"]}
    for depth in (50, 101, 152):
        cfg = compose_config("experiment=imagenet_deep", f"model=resnet{depth}")
        assert_paper_imagenet_recipe(cfg)
        assert cfg.model.depth == depth and cfg.model.residual and cfg.model.shortcut == "B"


def test_a_single_run_of_an_imagenet_experiment_trains_an_imagenet_net():
    """Without -m the sweep does not apply: the experiment's own model must fit its data."""
    assert compose_config("experiment=imagenet_plain_vs_resnet").model.depth == 34
    assert compose_config("experiment=imagenet_deep").model.depth == 50


def test_command_line_overrides_an_experiment():
    cfg = compose_config("experiment=cifar_plain_vs_resnet", "model=plain56", "trainer.max_iters=16000")
    assert cfg.model.depth == 56 and not cfg.model.residual and cfg.trainer.max_iters == 16000
