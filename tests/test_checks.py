"""Every setting acts or is refused: a key of another option by the option's schema while Hydra composes
(one line naming the options that have it), and what depends on the run or the machine by
resnet_train/checks.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from clitools import TINY, compose_config, run_cli
from omegaconf import OmegaConf

from resnet_train.checks import check_settings, composing_error
from resnet_train.config import config_dir
from resnet_train.errors import UserError

CONFIGS = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def check(*overrides: str) -> None:
    check_settings(OmegaConf.to_object(compose_config(*overrides)))


@pytest.fixture
def cuda(monkeypatch):
    """cuda(True|False): the host has a CUDA device or not, whatever this machine has."""
    return lambda available: monkeypatch.setattr(torch.cuda, "is_available", lambda: available)


@pytest.fixture(autouse=True)
def one_process(monkeypatch, tmp_path):
    """A plain process, not a torchrun or SLURM rank, unless a test says otherwise; the default data.root
    (./data) holds nothing."""
    monkeypatch.chdir(tmp_path)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)


def refusal(*overrides: str) -> str:
    with pytest.raises(UserError) as error:
        check(*overrides)
    message = str(error.value)
    assert "\n" not in message
    return message


def composing(*overrides: str) -> str:
    """What the CLI says of a config Hydra cannot compose."""
    from hydra.errors import HydraException

    with pytest.raises(HydraException) as error:
        compose_config(*overrides)
    message = composing_error(error.value)
    assert "\n" not in message
    return message


def test_every_combination_of_the_config_groups_passes(cuda):
    """Each group option sets only what acts for it, whatever the other groups are."""
    cuda(False)
    for data, sched in itertools.product(options("data"), options("sched")):
        folder = ["data.root=/x", "data.num_classes=3"] if data in ("imagefolder", "imagenet") else []
        check(f"data={data}", f"sched={sched}", *folder)
    for optim, trainer in itertools.product(options("optim"), options("trainer")):
        check(f"optim={optim}", f"trainer={trainer}")
    for model in options("model"):
        check(f"model={model}")
        check(f"model={model}", "data=imagenet")


def test_every_experiment_job_passes(cuda):
    cuda(False)
    for experiment in options("experiment"):
        sweep = compose_config(f"experiment={experiment}", hydra_config=True).hydra.sweeper.params
        for key, values in sweep.items():
            for value in str(values).split(","):
                check(f"experiment={experiment}", f"{key}={value}")


# (overrides, the message's start, the options it names where the key is a setting)
OTHER_OPTIONS = [
    (["optim.betas=[0.9,0.99]"], "optim.betas is not a setting of optim=sgd", "optim=adamw"),
    (["optim=adamw", "optim.momentum=0.8"], "optim.momentum is not a setting of optim=adamw", "optim=sgd"),
    (
        ["sched=cosine", "sched.gamma=0.5"],
        "sched.gamma is not a setting of sched=cosine",
        "sched=paper_cifar",
    ),
    (["sched.step_every=5"], "sched.step_every is not a setting of sched=paper_cifar", "sched=step"),
    (["sched.min_lr=0.001"], "sched.min_lr is not a setting of sched=paper_cifar", "sched=cosine"),
    (["sched.patience=3"], "sched.patience is not a setting of sched=paper_cifar", "sched=paper_imagenet"),
    (
        ["sched=step", "sched.milestones=[10]"],
        "sched.milestones is not a setting of sched=step",
        "paper_cifar",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "refused", "where"), OTHER_OPTIONS, ids=[" ".join(o) for o, *_ in OTHER_OPTIONS]
)
def test_a_key_of_another_option_is_refused_while_composing(overrides, refused, where):
    message = composing(*overrides)
    assert message.startswith(refused) and where in message.partition("it is a setting of")[2]


def test_a_key_no_schema_has_is_refused_with_the_closest_name():
    assert (
        composing("trainer.max_iter=5")
        == "trainer.max_iter is not a setting; did you mean trainer.max_iters?"
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [("+trainer.max_iter=5", "trainer.max_iter is not a setting; did you mean trainer.max_iters?"),
     ("+optim.betas=[0.9,0.9]", "optim.betas is not a setting of optim=sgd; it is a setting of optim=adamw")],
)  # fmt: skip
def test_a_key_added_past_the_schema_is_refused(override, named):
    """Hydra adds a `+` key past the structured schema; nothing would read it."""
    assert refusal(override) == named


# (overrides, the refused setting as the message names it, where it would apply)
IGNORED = [
    (
        ["sched.warmup_lr=0.02"],
        "sched.warmup_lr=0.02 has no effect with the warm-up off",
        "runs that warm up",
    ),
    (
        ["sched=paper_imagenet", "sched.warmup_until_train_error=0.5"],
        "warmup_until_train_error=0.5",
        "warm up",
    ),
    (["model=plain20", "model.shortcut=B"], "model.shortcut=B has no effect on a plain net", "residual nets"),
    (["model=plain20", "model.zero_init_residual=true"], "zero_init_residual=true has no effect", "residual"),
    (
        ["model.bottleneck_stride=v1_5"],
        "model.bottleneck_stride=v1_5 has no effect on a cifar net",
        "50, 101",
    ),
    (["model=resnet34", "model.bottleneck_stride=v1_5"], "has no effect on a imagenet net of depth 34", "50"),
    (
        ["trainer.compile=false", "trainer.compile_mode=max_autotune"],
        "compile_mode=max_autotune has no",
        "compiled",
    ),
]


@pytest.mark.parametrize(("overrides", "refused", "scope"), IGNORED, ids=[" ".join(o) for o, _, _ in IGNORED])
def test_a_setting_that_would_have_no_effect_is_refused(cuda, overrides, refused, scope):
    cuda(True)  # even where a GPU would be there
    message = refusal(*overrides)
    assert refused in message and scope in message.split("it applies to")[1]


ACTING = [
    ["sched=step", "sched.step_every=5", "sched.gamma=0.5"],
    ["sched=cosine", "sched.min_lr=0.001"],
    ["sched=paper_imagenet", "sched.patience=3", "sched.threshold=0.01"],
    ["model=resnet110", "sched.warmup_lr=0.02", "sched.warmup_until_train_error=0.5"],
    ["sched.warmup=on", "sched.warmup_lr=0.02"],
    ["sched.milestones=[10,20]"],
    ["optim=adamw", "optim.betas=[0.8,0.9]"],
    ["optim.momentum=0.8", "optim.nesterov=true"],
    ["model=resnet50", "model.bottleneck_stride=v1_5", "model.zero_init_residual=true"],
    ["trainer.compile=true", "trainer.compile_mode=max_autotune"],
]


@pytest.mark.parametrize("overrides", ACTING, ids=[" ".join(o) for o in ACTING])
def test_the_same_settings_where_they_act_are_accepted(cuda, overrides):
    cuda(False)
    check(*overrides)


def test_every_ignored_setting_is_named_in_one_line():
    message = refusal("model=plain20", "model.shortcut=B", "sched.warmup_lr=0.02")
    assert message.count("has no effect") == 2 and "model.shortcut=B" in message and "warmup_lr" in message


def test_sync_bn_needs_several_gpu_processes(cuda):
    cuda(True)
    check("trainer.devices=2", "model.sync_bn=true")
    assert "model.sync_bn=true has no effect on one process or off CUDA" in refusal("model.sync_bn=true")
    cuda(False)
    assert "off CUDA" in refusal("trainer.devices=2", "model.sync_bn=true")


def test_the_compile_mode_follows_the_device_the_run_gets(cuda):
    """trainer.device=auto: an unset trainer.compile (on for CUDA) acts on a machine with CUDA and is
    refused on one without; forced both ways, whatever this machine has."""
    cuda(True)
    check("trainer.compile_mode=max_autotune_no_cudagraphs")
    cuda(False)
    assert "with compiling off" in refusal("trainer.compile_mode=max_autotune_no_cudagraphs")


def test_under_torchrun_the_launcher_sets_the_processes(monkeypatch, cuda):
    cuda(True)
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    check("model.sync_bn=true")  # two processes share the statistics
    check("trainer.devices=2")  # says what torchrun does
    assert "trainer.devices=4 has no effect under torchrun (--nproc-per-node=2)" in refusal(
        "trainer.devices=4"
    )


def test_under_slurm_the_devices_are_the_tasks_per_node(monkeypatch, cuda):
    """hydra/launcher=slurm turns trainer.devices into tasks per node: every task sees it, and it acts."""
    cuda(True)
    for name, value in {"SLURM_NTASKS": "8", "SLURM_PROCID": "3", "SLURM_LOCALID": "3"}.items():
        monkeypatch.setenv(name, value)
    check("trainer.devices=8", "model.sync_bn=true")


def test_a_piece_that_does_not_exist_is_refused_before_anything_is_built():
    assert "sched._target_=nowhere.Schedule names nothing that" in refusal("sched._target_=nowhere.Schedule")
    assert "optim._target_=torch.optim.Nothing names nothing" in refusal("optim._target_=torch.optim.Nothing")


@pytest.mark.slow
def test_the_cli_says_an_other_options_key_in_one_line_and_exits_2(tmp_path):
    for overrides in (
        ["optim.betas=[0.9,0.99]"],
        ["sched=cosine", "sched.gamma=0.5"],
        ["+trainer.max_iter=5"],
    ):
        result = run_cli(*TINY, *overrides, f"hydra.run.dir={tmp_path}")
        assert result.returncode == 2, result.stdout
        errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
        assert len(errors) == 1 and "is not a setting" in errors[0], result.stdout
        assert "Traceback" not in result.stdout and "loading" not in result.stdout
    assert not (tmp_path / "checkpoints").exists()


def test_the_data_settings_that_depend_on_the_run(tmp_path):
    """data/datasets.py data_problems: the device is given both ways, whatever this machine has."""
    from resnet_train.data import data_problems

    imagenet = OmegaConf.to_object(compose_config("data=imagenet", "data.decode=gpu")).data
    assert data_problems(imagenet, on_cuda=True) == []
    assert "data.decode=gpu has no effect on a CPU run" in data_problems(imagenet, on_cuda=False)[0]
    memory = OmegaConf.to_object(compose_config("data=imagefolder", "data.root=/x", "data.num_classes=3",
                                                "data.loader=memory", "data.workers=2")).data  # fmt: skip
    assert data_problems(memory, on_cuda=False)[0].startswith(
        "data.workers=2 has no effect with data.loader=memory"
    )
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
    tree = OmegaConf.to_object(
        compose_config(f"data.root={tmp_path}", "data.download=true", "data.num_classes=4")
    ).data
    assert [p.split(" has")[0] for p in data_problems(tree, on_cuda=False)] == ["data.download=true"]
    archive = OmegaConf.to_object(compose_config("data.num_classes=5")).data
    assert data_problems(archive, on_cuda=False)[0].startswith(
        "data.num_classes=5 has no effect on data=cifar10"
    )
