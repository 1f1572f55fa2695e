"""resnet-train end to end: the composed configs build the paper's nets, a tiny run (in-process) writes
events, checkpoint and metrics, and the console script's sweeps, refusals and exit codes."""

import json
from pathlib import Path

import pytest
import torch
from clitools import TINY, TINY_DATA, compose_config, run_cli
from hydra.errors import HydraException
from omegaconf import OmegaConf
from paper import CIFAR_PARAMS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import resnet_train
from resnet_train.config import Family, config_dir
from resnet_train.engine.restore import model_from_config
from resnet_train.errors import UserError
from resnet_train.models import build_model, count_macs, count_parameters

METRICS_KEYS = {
    "model", "dataset", "iterations", "train_error", "test_error", "val_error", "best_val_error", "params",
    "wall_time_s", "images_per_s", "device", "synthetic",
}  # fmt: skip


def scalars(run_dir: Path) -> dict:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_defaults_are_the_papers_cifar_recipe():
    cfg = compose_config()
    assert cfg.trainer.batch_size == 128 and cfg.trainer.max_iters == 64000
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.optim.lr == 0.1 and cfg.optim.momentum == 0.9
    assert cfg.optim.weight_decay == 1e-4
    assert list(cfg.sched.milestones) == [32000, 48000] and cfg.sched.gamma == 0.1
    assert cfg.model.depth == 20 and cfg.model.shortcut == "A" and cfg.data.name == "cifar10"
    assert cfg.sched.warmup_lr == 0.01 and cfg.sched.warmup_until_train_error == 0.8


def test_imagenet_configs_compose():
    cfg = compose_config("data=imagenet", "sched=paper_imagenet", "trainer=imagenet")
    assert (
        cfg.data.num_classes == 1000
        and cfg.data.image_size == 224
        and list(cfg.data.scale_range) == [256, 480]
    )
    assert cfg.data.loader.name == "stream" and cfg.data.augment.name == "paper" and cfg.data.lighting == 0.1
    assert list(cfg.data.test_scales) == [224, 256, 384, 480, 640] and cfg.data.test_resize == 256
    assert cfg.sched._target_.endswith(".Plateau") and cfg.optim.lr == 0.1 and cfg.trainer.max_iters == 600000
    assert cfg.trainer.batch_size == 256
    step = compose_config("data=imagenet", "sched=step")
    assert step.sched.step_every == 30 * (1_281_167 // 256) == 150120 and step.sched.gamma == 0.1
    folder = compose_config("data=imagefolder", "data.root=/x", "data.num_classes=3")
    assert folder.data.loader.name == "stream" and folder.data.name == "imagefolder"


MODELS = sorted(p.stem for p in (Path(config_dir()) / "model").glob("*.yaml"))
# docs/paper.md: exact option-A parameter counts of the CIFAR nets (Sec. 4.2, Table 6; the plain twins have
# the same), and Table 1's multiply-adds of the ImageNet nets at 224x224.
IMAGENET_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


def test_every_model_config_builds_the_papers_net():
    """Each configs/model/*.yaml, composed with its family's dataset, builds the net of its name: the paper's
    parameter count (CIFAR) or multiply-adds (ImageNet ResNets; option B ones have torchvision's parameters),
    and a plain net is its option-A ResNet without the shortcuts."""
    import torchvision

    for model in MODELS:
        depth, residual = int(model.removeprefix("resnet").removeprefix("plain")), model.startswith("resnet")
        imagenet = depth in IMAGENET_MACS
        family = Family.imagenet if imagenet else Family.cifar
        cfg = compose_config(f"model={model}", "data=imagenet" if imagenet else "data=cifar10")
        m = OmegaConf.to_object(cfg).model
        assert (m.depth, m.residual, m.family) == (depth, residual, family), model
        with torch.device("meta"):
            net = model_from_config(m, 1000 if imagenet else 10, cfg.data.image_size)
        if not imagenet:
            assert count_parameters(net) == CIFAR_PARAMS[depth], model
            continue
        if not m.residual:  # the same stack as the option-A ResNet, its shortcuts removed (Sec. 3.3)
            with torch.device("meta"):
                twin = build_model(family, depth, True, 1000, shortcut="A", input_size=224)
            assert (count_parameters(net), count_macs(net, 224)) == (
                count_parameters(twin), count_macs(twin, 224)
            ), model  # fmt: skip
            continue
        assert count_macs(net, 224) == pytest.approx(IMAGENET_MACS[depth], rel=0.02), model
        if m.shortcut == "B":
            with torch.device("meta"):
                twin = getattr(torchvision.models, model)(num_classes=1000)
            assert count_parameters(net) == count_parameters(twin), model


@pytest.mark.parametrize("model", ["resnet20", "plain20", "resnet56"])
def test_a_run_of_a_cifar_model_config_trains_the_papers_net(train_job, model):
    job = train_job(f"model={model}", *TINY_DATA, "data.image_size=32", "trainer.max_iters=1", tiny=False)
    depth = int(model[-2:])
    assert job.metrics["model"] == model and job.metrics["depth"] == depth
    assert job.metrics["params"] == CIFAR_PARAMS[depth]  # Sec. 4.2, option A
    net = resnet_train.load_model(job.run_dir / "checkpoints" / "last.pt")
    assert count_parameters(net) == CIFAR_PARAMS[depth]
    assert json.loads((job.run_dir / "metrics.json").read_text())["params"] == CIFAR_PARAMS[depth]


def test_imagenet_net_builds_for_cifar_input():
    cfg = compose_config("model=resnet34", "data=cifar10")
    net = build_model(
        cfg.model.family, cfg.model.depth, cfg.model.residual, cfg.data.num_classes,
        shortcut=cfg.model.shortcut, stem=cfg.model.stem, input_size=cfg.data.image_size,
    )  # fmt: skip
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_end_to_end_run_writes_events_checkpoint_and_metrics(train_job):
    job = train_job("trainer.max_iters=12", "trainer.log_every=4", "trainer.eval_every=6", "data.val_size=64")
    metrics = json.loads((job.run_dir / "metrics.json").read_text())
    assert metrics == job.metrics
    assert METRICS_KEYS <= set(metrics)
    assert metrics["iterations"] == 12 and metrics["synthetic"] is True and metrics["model"] == "resnet8"
    assert 0 <= metrics["test_error"] <= 1 and 0 <= metrics["val_error"] <= 1
    assert "SYNTHETIC" in job.log
    curves = scalars(job.run_dir)
    assert {"error/train", "loss/train", "error/test", "loss/test", "error/val", "lr"} <= set(curves)
    assert [step for step, _ in curves["error/train"]] == [4, 8, 12]
    assert [step for step, _ in curves["error/test"]] == [6, 12]
    assert (job.run_dir / "checkpoints" / "last.pt").is_file()


@pytest.mark.slow
def test_two_job_sweep_writes_two_run_directories(tmp_path):
    result = run_cli("-m", *TINY, "model=resnet20,plain20", "trainer.max_iters=4", "trainer.eval_every=4",
                     "trainer.log_every=2", f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 0, result.stdout
    runs = sorted(p.parent.name for p in tmp_path.glob("*/metrics.json"))
    # Named after the net built (model.depth=8) and the dataset first; TensorBoard lists them by these names.
    assert [r.split(",")[0] for r in runs] == ["plain8-synthetic", "resnet8-synthetic"]
    assert all(any(tmp_path.joinpath(r).glob("events.out.tfevents.*")) for r in runs)
    models = {json.loads((tmp_path / r / "metrics.json").read_text())["model"] for r in runs}
    assert models == {"resnet8", "plain8"}


@pytest.mark.slow
def test_a_failing_sweep_job_is_one_line_the_others_run_and_the_sweep_ends_with_a_summary(tmp_path):
    result = run_cli("-m", *TINY, "model.depth=21,8", "trainer.max_iters=2", "trainer.eval_every=2",
                     f"hydra.sweep.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stdout and "Error executing job" not in result.stdout
    assert "1 of 2 jobs finished; failed: model.depth=21: CIFAR nets have 6n+2 layers" in result.stdout
    assert [p.parent.name for p in tmp_path.glob("*/metrics.json")] == [
        next(p.name for p in tmp_path.iterdir() if p.name.startswith("resnet8-"))
    ]
    assert not list(tmp_path.glob(".outcomes-*"))


def one_line_error(result) -> str:
    errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, result.stdout
    assert "Traceback" not in result.stdout
    return errors[0]


def one_line(error: UserError) -> str:
    """A refusal as resnet-train reports it: its message on one line, exit code 2."""
    assert error.exit_code == 2 and len(str(error).splitlines()) == 1, str(error)
    return str(error)


def with_causes(error: BaseException) -> str:
    """An exception's message and its causes', as Hydra prints them."""
    return str(error) + ("\n" + with_causes(error.__cause__) if error.__cause__ else "")


def test_missing_dataset_is_one_clear_error(tmp_path, train_job):
    with pytest.raises(UserError) as refused:
        train_job("data=cifar10", f"data.root={tmp_path / 'nowhere'}", "trainer.device=cpu", tiny=False)
    line = one_line(refused.value)
    assert "cifar-10-python.tar.gz" in line and "data.download=true" in line and "data.root" in line


def test_depth_that_is_not_6n_plus_2_is_refused(train_job):
    with pytest.raises(UserError) as refused:
        train_job("model.depth=21")
    assert "6n+2" in one_line(refused.value)


def test_wrong_shortcut_unknown_key_and_unknown_model_are_refused(tmp_path):
    from resnet_train.checks import composing_error

    shortcut = run_cli(*TINY, "model.shortcut=D", f"hydra.run.dir={tmp_path}")  # what the console shows
    assert shortcut.returncode == 2 and "model.shortcut=D is none of A, B, C" in one_line_error(shortcut)
    for override, said in [("trainer.max_iter=3", "did you mean trainer.max_iters?"),
                           ("model=resnet21", "resnet56"), ("data=cifar11", "cifar100")]:  # fmt: skip
        with pytest.raises(HydraException) as error:
            compose_config(*TINY, override)
        assert said in composing_error(error.value)
    assert not (tmp_path / "metrics.json").exists()


def test_batch_that_does_not_divide_among_processes_is_refused(train_job):
    with pytest.raises(UserError) as refused:
        train_job("trainer.batch_size=33", "trainer.devices=2")
    assert "does not divide among 2 processes" in one_line(refused.value)


def test_unwritable_output_directory_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli(*TINY, f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stdout and "run" in result.stdout


def test_run_directory_names_are_stable_and_short():
    from resnet_train.config import run_name

    assert run_name("") == "resnet20-cifar10"
    # The net actually built comes first: model=plain20 with model.depth=8 is a plain-8.
    name = run_name("data=cifar10,model.depth=8,model=plain20,trainer.seed=1", False, 8, "cifar10")
    assert name == "plain8-cifar10,model=plain20,trainer.seed=1"
    assert run_name("model=resnet56,trainer.seed=1", True, 56) == "resnet56-cifar10,trainer.seed=1"
    long = ",".join(f"trainer.key{i}=value{i}" for i in range(40))
    assert run_name(long) == run_name(long) and len(run_name(long).encode()) <= 160
    assert run_name(long) != run_name(long + "x")
    seeded = run_name(f"{long},trainer.seed=3")
    assert seeded.endswith(",trainer.seed=3") and len(seeded.encode()) <= 160


def test_every_numeric_setting_has_a_range_and_the_defaults_lie_in_it():
    import dataclasses
    import typing

    from resnet_train.config import check_ranges, config_from_plain, schemas

    numeric = {int, float, typing.Optional[int], typing.List[int], typing.List[float]}
    unchecked = [
        f"{schema.__name__}.{f.name}"
        for group in schemas().values() for schema in group for f in dataclasses.fields(schema)
        if typing.get_type_hints(schema)[f.name] in numeric and not f.metadata.get("check")
    ]  # fmt: skip
    assert unchecked == []
    for group, options in schemas().items():
        for schema in options:
            config = config_from_plain({})
            setattr(config, group, schema())
            check_ranges(config)


@pytest.mark.parametrize(
    "key, value",
    [
        ("trainer.batch_size", -5), ("trainer.batch_size", 0), ("trainer.eval_every", 0),
        ("trainer.log_every", 0), ("trainer.checkpoint_every", 0), ("trainer.devices", 0),
        ("trainer.eval_batch_size_per_process", 0), ("trainer.max_iters", 0), ("optim.lr", float("nan")),
        ("optim.lr", float("inf")), ("optim.momentum", 1.0), ("sched.gamma", 0.0),
        ("data.val_size", -1), ("sched.milestones", [48000, 32000]),
    ],
)  # fmt: skip
def test_a_number_out_of_range_is_refused_naming_the_key(key, value):
    from resnet_train.config import check_ranges, config_from_plain
    from resnet_train.errors import UserError

    config = config_from_plain({})
    group, name = key.split(".")
    setattr(getattr(config, group), name, value)
    with pytest.raises(UserError, match=f"out of range: {key}="):
        check_ranges(config)


def test_out_of_range_numbers_end_in_one_line_before_anything_loads(tmp_path):
    result = run_cli(*TINY, "trainer.batch_size=-5", "optim.lr=nan", "trainer.log_every=0",
                     f"hydra.run.dir={tmp_path}")  # fmt: skip
    assert result.returncode == 2
    line = one_line_error(result)
    assert "trainer.batch_size=-5 (must be >= 1)" in line and "optim.lr=nan" in line
    assert "trainer.log_every=0" in line
    assert not list(tmp_path.glob("events.out.tfevents.*")) and "SYNTHETIC" not in result.stdout


def test_a_sweep_summary_names_each_job_by_the_overrides_that_set_it_apart():
    from resnet_train.cli.sweep import distinguishing

    jobs = [["model=resnet20", "model.depth=8"], ["model=resnet20", "model.depth=21"]]
    assert distinguishing(jobs) == ["model.depth=8", "model.depth=21"]
    assert distinguishing([["model.depth=21", "trainer.seed=1"]]) == ["model.depth=21,trainer.seed=1"]


def test_run_directory_names_hold_no_shell_glob_characters():
    from resnet_train.config import run_name

    assert run_name("sched.milestones=[100,200],trainer.seed=1") == (
        "resnet20-cifar10,sched.milestones=100_200,trainer.seed=1"
    )
    star, question = run_name("data.x=a*b"), run_name("data.x=a?b")
    assert star != question  # replaced characters leave a digest, so names stay unique
    for name in (star, question, run_name("a={x: 1},b='y z'")):
        assert not set(name) & set("[]*?{}'\" $!~")
