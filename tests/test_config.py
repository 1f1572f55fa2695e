"""The schema's enums and the config as checkpoints store it."""

from __future__ import annotations

import enum
import inspect

from resnet_train import config as config_module
from resnet_train.config import (
    BottleneckStride,
    CompileMode,
    Config,
    Family,
    ModelConfig,
    TrainerConfig,
    config_to_plain,
)
from resnet_train.engine.checkpoint import load_checkpoint, save_checkpoint
from resnet_train.engine.restore import config_from_plain
from resnet_train.models import build_model


def test_every_option_has_one_spelling():
    """Hydra reads an override by the enum's name; the value must be the same word, or configs, checkpoints
    and the Python API would spell an option two ways (once `v1_5` and `v1.5`)."""
    enums = [e for _, e in inspect.getmembers(config_module, inspect.isclass) if issubclass(e, enum.Enum)]
    assert BottleneckStride in enums and CompileMode in enums
    for kind in enums:
        for member in kind:
            assert member.value == member.name, (kind.__name__, member.name, member.value)
    assert build_model("imagenet", 50, True, 10, bottleneck_stride="v1_5").stages[1][0].conv2.stride == (2, 2)
    assert CompileMode.reduce_overhead.torch_name == "reduce-overhead"  # torch.compile's own spelling


def stored(config: Config, tmp_path) -> dict:
    save_checkpoint(tmp_path, {"format": 1, "config": config_to_plain(config), "trainer": {"iteration": 1}})
    return load_checkpoint(tmp_path / "last.pt")["config"]  # torch.load(weights_only=True)


def test_the_stored_config_round_trips_through_a_safe_load(tmp_path):
    config = Config(
        model=ModelConfig(family=Family.imagenet, depth=50, bottleneck_stride=BottleneckStride.v1_5),
        trainer=TrainerConfig(compile_mode=CompileMode.max_autotune, channels_last=None, compile=True),
    )
    plain = stored(config, tmp_path)
    assert (
        plain["model"]["bottleneck_stride"] == "v1_5" and plain["trainer"]["compile_mode"] == "max_autotune"
    )
    assert plain["trainer"]["channels_last"] is None and plain["data"]["scale_range"] == [256, 480]
    assert config_from_plain(plain) == config


def test_the_stored_config_holds_the_same_content_as_before(tmp_path):
    """What checkpoints held when the conversion was written by hand (asdict, enums by name)."""
    plain = stored(Config(), tmp_path)
    assert plain["model"] == {
        "family": "cifar", "depth": 20, "residual": True, "shortcut": "A", "bottleneck_stride": "v1",
        "stem": "auto", "zero_init_residual": False, "sync_bn": False,
    }  # fmt: skip
    assert plain["sched"]["milestones"] == [32000, 48000] and plain["sched"]["warmup"] == "auto"
    assert plain["trainer"]["precision"] == "fp32" and plain["trainer"]["compile"] is None
    assert list(plain) == ["model", "data", "optim", "sched", "trainer"]
    assert all(
        type(v) in (str, int, float, bool, list, type(None)) for g in plain.values() for v in g.values()
    )


def test_a_checkpoint_from_before_one_spelling_still_loads():
    """Checkpoints always stored enums by name (`v1_5`, `reduce_overhead`): the names did not change."""
    old = config_to_plain(Config())
    old["model"].update(family="imagenet", depth=50, bottleneck_stride="v1_5")
    old["trainer"]["compile_mode"] = "reduce_overhead"
    config = config_from_plain(old)
    assert config.model.bottleneck_stride is BottleneckStride.v1_5
    assert config.trainer.compile_mode is CompileMode.reduce_overhead
