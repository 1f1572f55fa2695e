"""The schema's enums and the config as checkpoints store it."""

from __future__ import annotations

import enum
import inspect

from clitools import compose_config
from omegaconf import OmegaConf

from resnet_train import config as config_module
from resnet_train.config import BottleneckStride, CompileMode, config_from_plain, config_to_plain
from resnet_train.engine.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
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


def stored(config, tmp_path) -> dict:
    save_checkpoint(tmp_path, {"format": FORMAT_VERSION, "config": config_to_plain(config),
                               "trainer": {"iteration": 1}})  # fmt: skip
    return load_checkpoint(tmp_path / "last.pt")["config"]  # torch.load(weights_only=True)


def test_the_stored_config_round_trips_through_a_safe_load_with_each_options_schema(tmp_path):
    overrides = ["model=resnet50", "model.bottleneck_stride=v1_5", "trainer.compile_mode=max_autotune",
                 "trainer.compile=true", "optim=adamw", "sched=cosine", "sched.min_lr=0.001"]  # fmt: skip
    config = OmegaConf.to_object(compose_config(*overrides))
    plain = stored(config, tmp_path)
    assert (
        plain["model"]["bottleneck_stride"] == "v1_5" and plain["trainer"]["compile_mode"] == "max_autotune"
    )
    assert plain["trainer"]["channels_last"] is None and plain["optim"]["betas"] == [0.9, 0.999]
    assert all(
        type(v) in (str, int, float, bool, list, type(None)) for g in plain.values() for v in g.values()
    )
    restored = config_from_plain(plain)
    assert restored == config and type(restored.sched).__name__ == "CosineConfig"
