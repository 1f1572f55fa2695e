"""Every setting acts or is refused (resnet_train/applicability.py): the real config, composed as the CLI
composes it, with a key the schema lacks or a setting that would have no effect is one line naming it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from clitools import TINY, run_cli
from hydra import compose, initialize_config_dir

from resnet_train.applicability import check_settings
from resnet_train.config import config_dir, register_configs
from resnet_train.errors import UserError

CONFIGS = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


@pytest.fixture
def compose_config():
    """compose(*overrides) -> the composed config, as resnet-train composes it (no Hydra run needed)."""
    register_configs()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield lambda *overrides, **kwargs: compose("config", overrides=list(overrides), **kwargs)


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


def refusal(cfg) -> str:
    with pytest.raises(UserError) as error:
        check_settings(cfg)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_every_combination_of_the_config_groups_passes(compose_config, cuda):
    """Each group option sets only what acts for it, whatever the other groups are."""
    cuda(False)
    for data, sched in itertools.product(options("data"), options("sched")):
        check_settings(compose_config(f"data={data}", f"sched={sched}"))
    for optim, trainer in itertools.product(options("optim"), options("trainer")):
        check_settings(compose_config(f"optim={optim}", f"trainer={trainer}"))
    for model in options("model"):
        check_settings(compose_config(f"model={model}"))
        check_settings(compose_config(f"model={model}", "data=imagenet"))


def test_every_experiment_job_passes(compose_config, cuda):
    cuda(False)
    for experiment in options("experiment"):
        sweep = compose_config(f"experiment={experiment}", return_hydra_config=True).hydra.sweeper.params
        for key, values in sweep.items():
            for value in str(values).split(","):
                check_settings(compose_config(f"experiment={experiment}", f"{key}={value}"))


@pytest.mark.parametrize(
    ("override", "named"),
    [("+trainer.max_iter=5", "trainer.max_iter (did you mean trainer.max_iters?)"), ("+foo=1", "foo"),
     ("+data.stream.workers=1", "data.stream;")],
)  # fmt: skip
def test_a_key_the_schema_lacks_is_refused(compose_config, override, named):
    """Hydra stores a `+` key past the structured schema, and converting to the dataclasses drops it."""
    assert refusal(compose_config(override)).startswith(f"not a setting: {named}")


# (overrides, the refused setting as the message names it, where it would apply)
IGNORED = [
    (["data.train_size=64"], "data.train_size=64 has no effect on data=cifar10", "data=synthetic"),
    (
        ["data=cifar100", "data.test_size=10"],
        "data.test_size=10 has no effect on data=cifar100",
        "data=synthetic",
    ),
    (["sched.step_every=5"], "sched.step_every=5 has no effect with sched=paper_cifar", "sched=step"),
    (["sched.min_lr=0.001"], "sched.min_lr=0.001 has no effect with sched=paper_cifar", "sched=cosine"),
    (["sched.patience=3"], "sched.patience=3 has no effect with sched=paper_cifar", "sched=paper_imagenet"),
    (["sched.threshold=0.01"], "sched.threshold=0.01 has no effect", "sched=paper_imagenet"),
    (
        ["sched=step", "sched.milestones=[10]"],
        "sched.milestones=[10] has no effect with sched=step",
        "paper_cifar",
    ),
    (
        ["sched=cosine", "sched.gamma=0.5"],
        "sched.gamma=0.5 has no effect with sched=cosine",
        "sched=paper_cifar",
    ),
    (["sched.warmup_lr=0.02"], "sched.warmup_lr=0.02 has no effect with the warm-up off", "sched.warmup=on"),
    (
        ["sched=paper_imagenet", "sched.warmup_until_train_error=0.5"],
        "warmup_until_train_error=0.5",
        "warmup=on",
    ),
    (["optim.betas=[0.8,0.9]"], "optim.betas=[0.8,0.9] has no effect with optim=sgd", "optim=adamw"),
    (["optim=adamw", "optim.momentum=0.8"], "optim.momentum=0.8 has no effect with optim=adamw", "optim=sgd"),
    (
        ["optim=adamw", "optim.nesterov=true"],
        "optim.nesterov=true has no effect with optim=adamw",
        "optim=sgd",
    ),
    (
        ["data.augment=inception"],
        "data.augment=inception has no effect on data=cifar10",
        "data.loader=stream",
    ),
    (["data.lighting=0"], "data.lighting=0.0 has no effect on data=cifar10", "data.loader=stream"),
    (["data.scale_range=[300,400]"], "data.scale_range=[300,400] has no effect", "data.loader=stream"),
    (["data.test_resize=300"], "data.test_resize=300 has no effect", "data.loader=stream"),
    (["data.test_scales=[224]"], "data.test_scales=[224] has no effect", "data.loader=stream"),
    (["data.mean_samples=10"], "data.mean_samples=10 has no effect", "data.loader=stream"),
    (["data.workers=2"], "data.workers=2 has no effect on data=cifar10", "data.loader=stream"),
    (["data.decode=gpu"], "data.decode=gpu has no effect on data=cifar10", "data.loader=stream"),
    (
        ["data=synthetic", "data.on_bad_image=error"],
        "data.on_bad_image=error has no effect",
        "data.loader=stream",
    ),
    (
        ["data=imagenet", "data.decode=gpu", "trainer.device=cpu"],
        "data.decode=gpu has no effect on a CPU run",
        "GPU",
    ),
    (
        ["data=synthetic", "data.root=/data"],
        "data.root=/data has no effect on data=synthetic",
        "read from files",
    ),
    (
        ["data=imagenet", "data.download=true"],
        "data.download=true has no effect on data=imagenet",
        "data=cifar10",
    ),
    (["data.image_size=64"], "data.image_size=64 has no effect on data=cifar10 read from the", "trees"),
    (["data.num_classes=5"], "data.num_classes=5 has no effect on data=cifar10 read from the", "trees"),
    (["model=plain20", "model.shortcut=B"], "model.shortcut=B has no effect on a plain net", "residual nets"),
    (["model=plain20", "model.zero_init_residual=true"], "zero_init_residual=true has no effect", "residual"),
    (
        ["model.bottleneck_stride=v1_5"],
        "model.bottleneck_stride=v1_5 has no effect on a cifar net",
        "50, 101",
    ),
    (["model=resnet34", "model.bottleneck_stride=v1_5"], "has no effect on a imagenet net of depth 34", "50"),
    (["model.sync_bn=true"], "model.sync_bn=true has no effect on one process", "trainer.devices=N"),
    (
        ["trainer.compile=false", "trainer.compile_mode=max_autotune"],
        "compile_mode=max_autotune has no",
        "compiled",
    ),
]


@pytest.mark.parametrize(("overrides", "refused", "scope"), IGNORED, ids=[" ".join(o) for o, _, _ in IGNORED])
def test_a_setting_that_would_have_no_effect_is_refused(compose_config, cuda, overrides, refused, scope):
    cuda(True)  # even where a GPU would be there
    message = refusal(compose_config(*overrides))
    assert refused in message and "it applies to" in message and scope in message.split("it applies to")[1]


def test_download_has_no_effect_where_an_image_tree_is_read(compose_config, tmp_path):
    for split in ("train", "test"):
        (tmp_path / "tree" / split).mkdir(parents=True)
    message = refusal(compose_config(f"data.root={tmp_path / 'tree'}", "data.download=true"))
    expected = "data.download=true has no effect on data=cifar10 read from the image tree under data.root"
    assert expected in message


# The same keys where they act: accepted.
ACTING = [
    ["data=synthetic", "data.train_size=64", "data.test_size=10", "data.image_size=16", "data.num_classes=3"],
    ["sched=step", "sched.step_every=5", "sched.gamma=0.5"],
    ["sched=cosine", "sched.min_lr=0.001"],
    ["sched=paper_imagenet", "sched.patience=3", "sched.threshold=0.01"],
    ["model=resnet110", "sched.warmup_lr=0.02", "sched.warmup_until_train_error=0.5"],
    ["sched.warmup=on", "sched.warmup_lr=0.02"],
    ["sched.milestones=[10,20]"],
    ["optim=adamw", "optim.betas=[0.8,0.9]"],
    ["optim.momentum=0.8", "optim.nesterov=true"],
    ["data=imagenet", "data.augment=inception", "data.lighting=0", "data.workers=2", "data.mean_samples=10"],
    [
        "data=imagefolder",
        "data.root=/x",
        "data.num_classes=3",
        "data.on_bad_image=error",
        "data.test_scales=[224]",
    ],
    ["data.loader=stream", "data.image_size=28", "data.workers=2"],  # a CIFAR image tree, streamed
    ["data=imagefolder", "data.loader=memory", "data.root=/x", "data.num_classes=3", "data.image_size=32"],
    ["data.normalize=channel"],  # both loaders normalise with the training set's statistics
    # A CIFAR image tree (train/ and test/ under data.root) is read at its own size and checked against
    # data.num_classes: both act (the `tree` fixture's path).
    ["data.root=TREE", "data.image_size=8", "data.num_classes=4"],
    ["data.download=true", "data.root=/x"],
    ["data=cifar100", "data.download=true"],
    ["model=resnet50", "model.bottleneck_stride=v1_5", "model.zero_init_residual=true"],
    ["trainer.devices=2", "model.sync_bn=true"],
    ["trainer.compile=true", "trainer.compile_mode=max_autotune"],
]


@pytest.mark.parametrize("overrides", ACTING, ids=[" ".join(o) for o in ACTING])
def test_the_same_settings_where_they_act_are_accepted(compose_config, cuda, overrides, tmp_path):
    cuda(False)
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
    check_settings(compose_config(*(o.replace("TREE", str(tmp_path)) for o in overrides)))


def test_every_ignored_setting_is_named_in_one_line(compose_config):
    message = refusal(compose_config("data.workers=2", "optim.betas=[0.8,0.9]", "sched.patience=3"))
    assert message.count("has no effect") == 3
    assert all(key in message for key in ("data.workers=2", "optim.betas=[0.8,0.9]", "sched.patience=3"))


def test_gpu_decode_and_the_compile_mode_follow_the_device_the_run_gets(compose_config, cuda):
    """trainer.device=auto: data.decode=gpu and an unset trainer.compile (on for CUDA) act on a machine with
    CUDA and are refused on one without; forced both ways, whatever this machine has."""
    gpu_decode = ("data=imagenet", "data.decode=gpu")
    compile_mode = ("trainer.compile_mode=max_autotune_no_cudagraphs",)
    cuda(True)
    check_settings(compose_config(*gpu_decode))
    check_settings(compose_config(*compile_mode))
    assert "data.decode=gpu has no effect on a CPU run" in refusal(
        compose_config(*gpu_decode, "trainer.device=cpu")
    )
    cuda(False)
    assert "no CUDA device is available" in refusal(compose_config(*gpu_decode))
    assert "trainer.compile=null, on a CPU" in refusal(compose_config(*compile_mode))


def test_under_torchrun_the_launcher_sets_the_processes(compose_config, monkeypatch):
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    check_settings(compose_config("model.sync_bn=true"))  # two processes share the statistics
    check_settings(compose_config("trainer.devices=2"))  # says what torchrun does
    message = refusal(compose_config("trainer.devices=4"))
    assert "trainer.devices=4 has no effect under torchrun (--nproc-per-node=2)" in message


def test_under_slurm_the_devices_are_the_tasks_per_node(compose_config, monkeypatch):
    """hydra/launcher=slurm turns trainer.devices into tasks per node: every task sees it, and it acts."""
    for name, value in {"SLURM_NTASKS": "8", "SLURM_PROCID": "3", "SLURM_LOCALID": "3"}.items():
        monkeypatch.setenv(name, value)
    check_settings(compose_config("trainer.devices=8", "model.sync_bn=true"))


def test_the_cli_refuses_a_plus_typo_before_loading_anything(tmp_path):
    """`+trainer.max_iter=5` (Hydra's own suggestion for the typo) was stored and ignored: now exit 2."""
    result = run_cli(*TINY, "+trainer.max_iter=5", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stdout
    errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "not a setting: trainer.max_iter" in errors[0], result.stdout
    assert "Traceback" not in result.stdout and "loading" not in result.stdout
    assert not (tmp_path / "checkpoints").exists()
