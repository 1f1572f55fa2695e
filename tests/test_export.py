"""Export to torchvision's layout: the nets torchvision has load with strict=True and compute the same
function; every other net is refused with its reason."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import torch
import torchvision
from clitools import console_script

from resnet_train import load_model
from resnet_train.cli.export import main as export_main
from resnet_train.config import BottleneckStride, Family
from resnet_train.models import build_model
from resnet_train.models.export import NotExportable, to_torchvision, torchvision_arch


def _trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BN statistics that differ from their initial values, so a wrong mapping shows."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(noise + 0.5 if name.endswith("running_var") else noise - 0.5)
    return model.eval()


@pytest.mark.parametrize(
    "depth, stride",
    [
        pytest.param(18, BottleneckStride.v1, id="resnet18"),
        pytest.param(50, BottleneckStride.v1_5, id="resnet50", marks=pytest.mark.slow),  # bottleneck names
    ],
)
def test_torchvision_loads_the_export_and_computes_the_same(depth, stride):
    ours = _trained_looking(
        build_model(Family.imagenet, depth, True, 7, shortcut="B", bottleneck_stride=stride)
    )
    assert torchvision_arch(ours) == f"resnet{depth}"
    theirs = getattr(torchvision.models, f"resnet{depth}")(num_classes=7)
    theirs.load_state_dict(to_torchvision(ours), strict=True)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(images), ours(images))


@pytest.mark.parametrize(
    "family, depth, residual, options, reason",
    [
        (Family.imagenet, 18, True, {"shortcut": "A"}, "option A"),
        (Family.imagenet, 18, True, {"shortcut": "C"}, "option C"),
        (Family.imagenet, 18, False, {}, "plain net"),
        (Family.imagenet, 18, True, {"shortcut": "B", "input_size": 32}, "CIFAR stem"),
        (Family.cifar, 20, True, {}, "CIFAR stem"),
        (Family.imagenet, 50, True, {"shortcut": "B"}, "v1"),
    ],
)
def test_nets_without_a_torchvision_twin_are_refused(family, depth, residual, options, reason):
    with pytest.raises(NotExportable, match=reason):
        to_torchvision(build_model(family, depth, residual, 10, **options))


def _export(checkpoint: Path, form: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script("resnet-export"), str(checkpoint), "--format", form, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip


def test_cli_round_trip_through_torchvision(tmp_path, train_job, caplog):
    """A trained ImageNet-stem ResNet-18 (option B) leaves the tool and torchvision computes what we do."""
    run = train_job(
        "model=resnet18", "model.shortcut=B", "model.stem=imagenet", "data=synthetic", "data.num_classes=3",
        "data.image_size=64", "data.train_size=16", "data.test_size=8", "trainer.batch_size=8",
        "trainer.device=cpu", "trainer.progress=false", "trainer.max_iters=2", "sched.milestones=[1]",
        run_dir=tmp_path / "run", tiny=False,
    )  # fmt: skip
    checkpoint = run.run_dir / "checkpoints" / "last.pt"
    with caplog.at_level(logging.INFO, logger="resnet_train"):
        export_main([str(checkpoint), "--format", "torchvision", "--out", str(tmp_path / "tv.pt")])
    assert "torchvision.models.resnet18(num_classes=3)" in caplog.text
    theirs = torchvision.models.resnet18(num_classes=3)
    theirs.load_state_dict(torch.load(tmp_path / "tv.pt"), strict=True)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(theirs.eval()(images), load_model(checkpoint)(images))


def test_cli_state_dict_and_refusal(tmp_path, train_job):
    run = train_job("trainer.max_iters=2", "sched.milestones=[1]", run_dir=tmp_path / "run")
    checkpoint = run.run_dir / "checkpoints" / "last.pt"
    export_main([str(checkpoint), "--format", "state_dict", "--out", str(tmp_path / "net.pt")])
    model = load_model(checkpoint)
    assert torch.load(tmp_path / "net.pt").keys() == model.state_dict().keys()
    refused = _export(checkpoint, "torchvision", tmp_path / "tv.pt")  # the console script's exit code
    assert refused.returncode == 2
    assert "CIFAR stem" in refused.stdout and "Traceback" not in refused.stdout
    assert not (tmp_path / "tv.pt").exists()
