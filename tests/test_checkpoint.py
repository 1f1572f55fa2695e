import errno
import logging
import os
import pickle

import pytest
import torch

from resnet_train.engine import checkpoint as ckpt
from resnet_train.engine.checkpoint import (
    CheckpointError,
    check_identity,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def state(iteration):
    return {
        "format": 1,
        "model": {"w": torch.full((3,), float(iteration))},
        "trainer": {"iteration": iteration},
    }


def test_save_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["iteration"] == 2
    assert load_checkpoint(tmp_path / "prev.pt")["trainer"]["iteration"] == 1
    assert not (tmp_path / "last.pt.tmp").exists()


def test_truncated_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, caplog):
    save_checkpoint(tmp_path, state(1))
    save_checkpoint(tmp_path, state(2))
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path)["trainer"]["iteration"] == 1
    assert "corrupted" in caplog.text and "using the previous checkpoint" in caplog.text


def test_flipped_byte_is_detected_by_the_checksum(tmp_path):
    save_checkpoint(tmp_path, state(1))
    data = bytearray((tmp_path / "last.pt").read_bytes())
    data[-200] ^= 0xFF
    (tmp_path / "last.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "last.pt")


def test_truncated_file_without_checksum_is_reported(tmp_path):
    save_checkpoint(tmp_path, state(1))
    (tmp_path / "last.pt.sha256").unlink()
    (tmp_path / "last.pt").write_bytes((tmp_path / "last.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "last.pt")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Exploit()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, state(1))
    real_save = torch.save

    def full_disk(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device.*kept last.pt"):
        save_checkpoint(tmp_path, state(2))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["iteration"] == 1
    assert not (tmp_path / "last.pt.tmp").exists()


def test_identity_mismatch_names_both(tmp_path):
    saved = {"identity": {"model": "resnet20", "dataset": "cifar10"}}
    with pytest.raises(
        CheckpointError, match="made for model=resnet20, but the config asks for model=resnet56"
    ):
        check_identity(saved, {"model": "resnet56", "dataset": "cifar10"}, "x.pt")


def test_rng_state_round_trips_through_a_safe_load(tmp_path):
    import random

    import numpy as np

    saved = rng_state()
    torch.save({"rng": saved}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
