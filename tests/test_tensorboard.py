"""What TensorBoard shows of a run: card order, the Custom Scalars chart and the HPARAMS columns."""

from __future__ import annotations

import pytest
from clitools import make_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from resnet_train.config import DeviceKind, ModelConfig, TrainerConfig
from resnet_train.engine import run
from resnet_train.engine.distributed import World
from resnet_train.engine.logger import RunLogger
from resnet_train.engine.loop import LoopState
from resnet_train.engine.run import Runtime
from resnet_train.engine.summary import RunSummary


def write_tiny_run(run_dir, residual: bool) -> EventAccumulator:
    model, trainer = ModelConfig(depth=8, residual=residual), TrainerConfig(device=DeviceKind.cpu)
    config = make_config(model=model, trainer=trainer)
    logger = RunLogger(run_dir, enabled=True, start_iteration=0, max_iters=4, progress=False, synthetic=True)
    logger.train_point(2, 2.1, 0.8, 0.1, 100.0)
    logger.train_point(4, 1.9, 0.7, 0.1, 100.0)
    logger.eval_point(4, "test", 2.0, 0.75)
    state = LoopState(iteration=4, train_time_s=1.0, train_images=100, wall_time_s=1.0)
    last = {"train_error": 0.7, "test_error": 0.75}
    runtime = Runtime.resolve(config.trainer, World())
    logger.finish(RunSummary.of(config, runtime, state, last, params=0, synthetic=True))
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return events


def test_events_sit_in_the_run_directory_with_error_cards_first(tmp_path):
    events = write_tiny_run(tmp_path, residual=False)
    tags = sorted(events.Tags()["scalars"])  # TensorBoard's card order
    assert tags[:2] == ["error/test", "error/train"]
    assert not any(tag.startswith("final/") for tag in tags)  # final values are the HPARAMS view's
    stored = events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    layout = layout_pb2.Layout.FromString(stored)
    chart = layout.category[0].chart[0]
    assert layout.category[0].title == "error" and list(chart.multiline.tag) == [r"^error/(train|val|test)$"]
    assert not (tmp_path / "tb").exists()


@pytest.mark.parametrize("native_bf16", [False, True])
def test_hparams_hold_the_columns_that_tell_runs_apart(tmp_path, monkeypatch, native_bf16):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: native_bf16)  # fp32 by default on either CPU
    events = write_tiny_run(tmp_path, residual=False)
    content = events.PluginTagToContent("hparams")
    # No experiment summary: TensorBoard builds the view from all runs' rows, differing columns first, and
    # reads the metrics from the scalar curves.
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert set(hparams) == {
        "model", "depth", "residual", "shortcut", "dataset", "lr", "batch", "schedule", "seed", "iterations",
        "precision",
    }  # fmt: skip
    assert hparams["model"].string_value == "plain8" and hparams["depth"].number_value == 8
    assert hparams["residual"].string_value == "no" and hparams["shortcut"].string_value == "none"
    assert hparams["precision"].string_value == "fp32" and hparams["dataset"].string_value == "cifar10"


def test_resnet_hparams_name_the_shortcut(tmp_path):
    events = write_tiny_run(tmp_path, residual=True)
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content)
    assert start.session_start_info.hparams["shortcut"].string_value == "A"
    assert start.session_start_info.hparams["residual"].string_value == "yes"


def test_a_resumed_runs_events_file_sorts_after_the_killed_attempts(tmp_path):
    """TensorBoard reads a run's files in name order; a file opened in the same second as an earlier one
    (with a higher pid) would come first, and its points be dropped as orphans when the older file steps
    back."""
    import time

    from torch.utils.tensorboard import SummaryWriter

    from resnet_train.engine.logger import wait_for_a_later_second

    earlier = tmp_path / f"events.out.tfevents.{int(time.time()) + 1}.host.999999999.0"
    earlier.write_bytes(b"")
    wait_for_a_later_second(tmp_path)
    writer = SummaryWriter(str(tmp_path))
    writer.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and names[0] == earlier.name
