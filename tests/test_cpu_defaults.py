"""What a run gets on a CPU when the trainer settings are left unset, and that set ones are kept. Every test
forces the native-bf16 detection both ways, so none depends on the CPU it runs on."""

import json
import logging

import pytest
import torch
from clitools import compose_config, make_config

from resnet_train.config import (
    DeviceKind,
    ModelConfig,
    Precision,
    SyntheticData,
    TrainerConfig,
)
from resnet_train.engine import run
from resnet_train.engine.distributed import World


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_default_is_fp32_channels_last_eager_on_any_cpu(monkeypatch, native_bf16):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: native_bf16)
    rt = run.Runtime.resolve(TrainerConfig(device=DeviceKind.cpu), World())
    assert rt.channels_last and not rt.compile
    assert rt.amp_dtype is None and rt.precision == "fp32" and not rt.emulated_bf16


@pytest.mark.parametrize("native_bf16", [False, True])
def test_the_composed_config_trains_fp32(monkeypatch, native_bf16):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: native_bf16)
    for trainer in ("default", "imagenet"):
        cfg = compose_config(f"trainer={trainer}", "trainer.device=cpu")
        assert cfg.trainer.precision is Precision.fp32
        assert run.Runtime.resolve(cfg.trainer, World()).amp_dtype is None


def test_explicit_cpu_settings_are_kept(monkeypatch):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: True)
    t = TrainerConfig(device=DeviceKind.cpu, precision=Precision.fp32, channels_last=False, compile=True)
    rt = run.Runtime.resolve(t, World())
    assert (rt.amp_dtype, rt.channels_last, rt.compile) == (None, False, True)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_explicit_bf16_is_given_and_only_emulated_bf16_is_warned_about(
    monkeypatch, caplog, tmp_path, native_bf16
):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: native_bf16)
    trainer = TrainerConfig(
        device=DeviceKind.cpu,
        precision=Precision.bf16,
        max_iters=2,
        batch_size=16,
        eval_every=2,
        log_every=1,
        progress=False,
    )
    rt = run.Runtime.resolve(trainer, World())
    assert rt.amp_dtype is torch.bfloat16 and rt.precision == "bf16"  # asked for: given, even if emulated
    assert rt.emulated_bf16 is not native_bf16
    data = SyntheticData(num_classes=10, image_size=16, train_size=32, test_size=16)
    config = make_config(model=ModelConfig(depth=8), data=data, trainer=trainer)
    with caplog.at_level(logging.INFO, logger="resnet_train"):
        run.train(config, tmp_path, rt)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("resnet8 in bf16 on cpu: loading synthetic")  # the first line says it
    warned = [line for line in lines if "emulated" in line]
    assert warned == (
        []
        if native_bf16
        else [
            "trainer.precision=bf16 on a CPU without native bf16 (AVX512_BF16 or AMX): emulated, with bf16's "
            "rounding but about 5x slower than fp32"
        ]
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize(
    "capability, allow_tf32, precision, named",
    [
        ((8, 0), True, Precision.fp32, "fp32 (TF32 convolutions)"),  # Ampere and newer: PyTorch's default
        ((7, 0), True, Precision.fp32, "fp32"),  # no TF32 before Ampere
        ((9, 0), False, Precision.fp32, "fp32"),  # turned off by the user
        ((9, 0), True, Precision.bf16, "bf16"),
    ],
)
def test_cuda_fp32_names_its_tf32_convolutions(monkeypatch, capability, allow_tf32, precision, named):
    """The CUDA branch, forced on any machine: a fake device, its capability and cuDNN's TF32 switch."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: False)  # a CPU's bf16 is not the GPU's
    rt = run.Runtime.resolve(TrainerConfig(device=DeviceKind.cuda, precision=precision), World())
    assert rt.device.type == "cuda" and rt.compile and rt.channels_last
    assert rt.precision == named and not rt.emulated_bf16
