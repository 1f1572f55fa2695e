"""What a run gets on a CPU when the trainer settings are left unset, and that set ones are kept."""

import pytest
import torch

from resnet_train.config import DeviceKind, Precision, TrainerConfig
from resnet_train.engine import run
from resnet_train.engine.distributed import World


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_default_is_channels_last_eager_and_bf16_only_where_native(monkeypatch, native_bf16):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: native_bf16)
    rt = run.Runtime.resolve(TrainerConfig(device=DeviceKind.cpu), World())
    assert rt.channels_last and not rt.compile
    assert rt.amp_dtype is (torch.bfloat16 if native_bf16 else None)


def test_explicit_cpu_settings_are_kept(monkeypatch):
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: True)
    t = TrainerConfig(device=DeviceKind.cpu, precision=Precision.fp32, channels_last=False, compile=True)
    rt = run.Runtime.resolve(t, World())
    assert (rt.amp_dtype, rt.channels_last, rt.compile) == (None, False, True)
    t = TrainerConfig(device=DeviceKind.cpu, precision=Precision.bf16)
    monkeypatch.setattr(run, "cpu_has_native_bf16", lambda: False)
    assert run.Runtime.resolve(t, World()).amp_dtype is torch.bfloat16  # asked for: given, even if emulated
