"""trainer.cuda_graph: the settings it refuses (checked without a GPU) and, on CUDA, that replaying the
captured step trains as the eager step does, follows lr changes made after the capture, and resumes."""

import json
from dataclasses import replace

import pytest
import torch
from clitools import TINY, make_config, run_cli

from resnet_train.config import (
    CompileMode,
    DeviceKind,
    ModelConfig,
    NanPolicy,
    Precision,
    SyntheticData,
    TrainerConfig,
)  # fmt: skip
from resnet_train.engine import run
from resnet_train.engine.distributed import World
from resnet_train.engine.run import Runtime, build_trainer, seed_everything
from resnet_train.errors import UserError


def cuda_only(test):
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.gpu(skip(test))


CONFIG = make_config(
    model=ModelConfig(depth=8),
    data=SyntheticData(num_classes=10, image_size=16, train_size=256, test_size=32),
    trainer=TrainerConfig(batch_size=32, max_iters=8, progress=False, device=DeviceKind.cuda),
)


def test_a_cuda_graph_on_the_cpu_is_refused():
    with pytest.raises(UserError, match="trainer.cuda_graph=true: it needs a CUDA device"):
        Runtime.resolve(TrainerConfig(device=DeviceKind.cpu, cuda_graph=True), World())


@pytest.mark.parametrize(
    "settings, world, message",
    [
        ({"nan_policy": NanPolicy.skip}, World(), "use trainer.nan_policy=stop"),
        ({"precision": Precision.fp16}, World(), "use trainer.precision=bf16"),
        ({"compile_mode": CompileMode.reduce_overhead}, World(), "captures CUDA graphs of its own"),
        ({"compile_mode": CompileMode.max_autotune}, World(), "use trainer.compile_mode=default"),
        ({}, World(rank=0, world_size=2), "not supported with DDP"),
    ],
)
def test_settings_whose_step_waits_for_the_host_are_refused(monkeypatch, settings, world, message):
    monkeypatch.setattr(run, "resolve_device", lambda kind, local_rank=0: torch.device("cuda", local_rank))
    monkeypatch.setattr(run, "tf32_convolutions", lambda device: True)  # no GPU to ask
    with pytest.raises(UserError, match=message):
        Runtime.resolve(TrainerConfig(cuda_graph=True, **settings), world)
    Runtime.resolve(TrainerConfig(cuda_graph=False, **settings), world)  # fine without the graph


def trainer_for(tmp_path, cuda_graph: bool, fast: bool = False):
    seed_everything(0)  # the same initial weights for every trainer
    t = replace(
        CONFIG.trainer, cuda_graph=cuda_graph, precision=Precision.bf16 if fast else Precision.fp32,
        channels_last=fast, compile=fast,
    )  # fmt: skip
    runtime = Runtime.resolve(t, World())
    trainer, data, _ = build_trainer(replace(CONFIG, trainer=t), tmp_path, World(), runtime)
    return trainer, list(data.train.epoch(0))


@cuda_only
def test_replayed_steps_train_as_the_eager_steps_do(tmp_path):
    # 3 eager warm-up steps, the captured step, then replays; the lr drops after the capture.
    lrs = [0.1, 0.1, 0.1, 0.1, 0.1, 0.02, 0.02]
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        eager, batches = trainer_for(tmp_path / "eager", cuda_graph=False)
        graphed, _ = trainer_for(tmp_path / "graph", cuda_graph=True)
        for (images, labels), lr in zip(batches, lrs):
            eager.step(images, labels, lr)
            graphed.step(images, labels, lr)
    assert graphed.graph.graph is not None, "the step was never captured"
    for (name, a), b in zip(eager.raw_model.state_dict().items(), graphed.raw_model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(graphed.loss_sum, eager.loss_sum, rtol=1e-4, atol=1e-5)
    assert int(graphed.wrong_sum) == int(eager.wrong_sum) and graphed.seen == eager.seen


@cuda_only
def test_an_lr_set_after_the_capture_reaches_the_replays(tmp_path):
    graphed, batches = trainer_for(tmp_path, cuda_graph=True)
    for images, labels in batches[:4]:
        graphed.step(images, labels, 0.1)
    assert graphed.graph.graph is not None
    before = [p.detach().clone() for p in graphed.raw_model.parameters()]
    graphed.step(*batches[4], 0.0)
    assert all(torch.equal(a, p) for a, p in zip(before, graphed.raw_model.parameters()))
    graphed.step(*batches[5], 0.1)
    assert not all(torch.equal(a, p) for a, p in zip(before, graphed.raw_model.parameters()))


@cuda_only
def test_the_compiled_bf16_graph_updates_as_the_fp32_eager_step_does(tmp_path):
    eager, batches = trainer_for(tmp_path / "eager", cuda_graph=False)
    fast, fast_batches = trainer_for(tmp_path / "fast", cuda_graph=True, fast=True)
    start = {k: v.detach().clone() for k, v in eager.raw_model.named_parameters()}
    for (x, y), (fx, fy) in list(zip(batches, fast_batches))[:6]:
        eager.step(x, y, 0.1)
        fast.step(fx, fy, 0.1)
    assert fast.graph.graph is not None
    fast_params = dict(fast.raw_model.named_parameters())
    for name, param in eager.raw_model.named_parameters():
        slow_update = param.detach() - start[name]
        fast_update = fast_params[name].detach() - start[name]
        cosine = torch.nn.functional.cosine_similarity(slow_update.flatten(), fast_update.flatten(), dim=0)
        assert cosine > 0.95, (name, float(cosine))
    before = [p.detach().clone() for p in fast.raw_model.parameters()]
    fast.step(*fast_batches[6], 0.0)  # the compiled graph reads the lr tensor too
    assert all(torch.equal(a, p) for a, p in zip(before, fast.raw_model.parameters()))


@cuda_only
def test_a_batch_of_another_size_runs_outside_the_graph(tmp_path, caplog):
    graphed, batches = trainer_for(tmp_path, cuda_graph=True)
    for images, labels in batches[:5]:
        graphed.step(images, labels, 0.1)
    before = [p.detach().clone() for p in graphed.raw_model.parameters()]
    images, labels = batches[5]
    graphed.step(images[:20], labels[:20], 0.1)
    assert graphed.graph.odd_batches == 1 and "ran outside the CUDA graph" in caplog.text
    assert not all(torch.equal(a, p) for a, p in zip(before, graphed.raw_model.parameters()))
    graphed.step(*batches[6], 0.1)  # and the graph replays as before
    assert graphed.seen == 6 * 32 + 20 and all(
        torch.isfinite(p).all() for p in graphed.raw_model.parameters()
    )


@cuda_only
def test_a_graphed_run_checkpoints_and_resumes(tmp_path):
    args = [a for a in TINY if a != "trainer.device=cpu"] + [
        "trainer.device=cuda", "trainer.cuda_graph=true", "trainer.log_every=5", "trainer.eval_every=10",
        "trainer.checkpoint_every=10",
    ]  # fmt: skip
    first = run_cli(*args, f"hydra.run.dir={tmp_path / 'resumed'}", "trainer.max_iters=10")
    assert first.returncode == 0, first.stdout
    second = run_cli(*args, f"hydra.run.dir={tmp_path / 'resumed'}", "trainer.max_iters=20")
    assert second.returncode == 0, second.stdout
    assert "resumed from iteration 10" in second.stdout
    whole = run_cli(*args, f"hydra.run.dir={tmp_path / 'whole'}", "trainer.max_iters=20")
    assert whole.returncode == 0, whole.stdout
    resumed, uninterrupted = (
        json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("resumed", "whole")
    )
    assert resumed["cuda_graph"] and resumed["iterations"] == 20
    # The resumed run warms up again, then captures: it trains as the uninterrupted one did.
    assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=0.05)
    assert abs(resumed["test_error"] - uninterrupted["test_error"]) <= 0.05
