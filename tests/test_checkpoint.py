import errno
import io
import logging
import os
import pickle

import pytest
import torch

from resnet_train.engine import checkpoint as ckpt
from resnet_train.engine.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def state(iteration):
    return {
        "format": FORMAT_VERSION,
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
    with pytest.raises(CheckpointError, match="no last.pt.sha256, and it is not a readable zip"):
        load_checkpoint(tmp_path / "last.pt")


def big_state(iteration):
    return {**state(iteration), "model": {"w": torch.arange(40000.0)}}


def test_flipped_bytes_without_checksum_are_caught_by_the_zip_crcs(tmp_path):
    save_checkpoint(tmp_path, big_state(1))
    (tmp_path / "last.pt.sha256").unlink()
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["iteration"] == 1  # intact: trusted by its CRCs
    data = bytearray((tmp_path / "last.pt").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    (tmp_path / "last.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted .it has no last.pt.sha256, and the CRC of"):
        load_checkpoint(tmp_path / "last.pt")


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT_VERSION, "payload": Exploit()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot be loaded safely") as refused:
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()
    assert "weights_only" not in str(refused.value)  # never the advice to load it unsafely


def test_a_checkpoint_of_another_format_is_refused_in_one_line(tmp_path):
    path = save_checkpoint(tmp_path, {**state(3), "format": FORMAT_VERSION - 1})
    with pytest.raises(CheckpointError, match=f"of format {FORMAT_VERSION - 1}, from another version"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a resnet-train checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


class FullDisk(io.FileIO):
    """A file on a disk that fills after `room` bytes."""

    room = 2000

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_full_disk_is_one_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, state(1))
    # torch.save turns the file's OSError into a RuntimeError ("unexpected pos"); the OSError is its context.
    with pytest.raises(RuntimeError) as raised, FullDisk(tmp_path / "probe", "wb") as file:
        torch.save(big_state(2), file)
    assert isinstance(raised.value.__context__, OSError)

    def open_on_full_disk(path, mode):
        return FullDisk(path, mode) if "b" in mode else open(path, mode)

    monkeypatch.setattr(ckpt, "open", open_on_full_disk, raising=False)
    with pytest.raises(CheckpointError, match="No space left on device; kept last.pt"):
        save_checkpoint(tmp_path, big_state(2))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256", "probe"]


def test_a_really_full_disk_keeps_the_previous_checkpoint(small_filesystem):
    disk = small_filesystem("96k")
    save_checkpoint(disk, state(1))
    with pytest.raises(CheckpointError, match="No space left on device; kept last.pt"):
        save_checkpoint(disk, big_state(2))  # 160 KB of weights: no room
    assert load_checkpoint(disk / "last.pt")["trainer"]["iteration"] == 1
    assert sorted(p.name for p in disk.iterdir()) == ["last.pt", "last.pt.sha256"]


class Crash(BaseException):
    """The process dies here: nothing after it runs, no clean-up either."""


def crash_at(monkeypatch, point):
    """Make the next save die at `point`: inside torch.save, before its digest, or before the k-th rename."""
    if point == "torch.save":
        real_save = torch.save

        def half_save(obj, file):
            real_save(obj, file)
            file.truncate(file.tell() // 2)
            raise Crash

        monkeypatch.setattr(ckpt.torch, "save", half_save)
    elif point == "digest":
        monkeypatch.setattr(ckpt, "_sha256", lambda path: (_ for _ in ()).throw(Crash()))
    else:
        renames, real_replace = [], os.replace

        def replace(src, dst):
            if len(renames) == point:
                raise Crash
            renames.append(src)
            real_replace(src, dst)

        monkeypatch.setattr(ckpt.os, "replace", replace)


# Every point a save can die at, after 0, 1 or 2 earlier saves: inside torch.save, before the digest, and
# before each rename (a first save has two: tmp->last and its digest; later ones four: last->prev and its
# digest first).
CRASH_POINTS = [
    (earlier, point)
    for earlier in (0, 1, 2)
    for point in ["torch.save", "digest", *range(2 if earlier == 0 else 4)]
]


@pytest.mark.parametrize(("earlier", "point"), CRASH_POINTS)
def test_a_crash_anywhere_in_a_save_leaves_the_newest_checkpoint(tmp_path, monkeypatch, earlier, point):
    for iteration in range(1, earlier + 1):
        save_checkpoint(tmp_path, state(iteration))
    crash_at(monkeypatch, point)
    with pytest.raises(Crash):
        save_checkpoint(tmp_path, state(earlier + 1))
    monkeypatch.undo()
    committed = point not in ("torch.save", "digest")
    newest = latest_checkpoint(tmp_path)
    expected = earlier + 1 if committed else earlier
    assert (newest["trainer"]["iteration"] if newest else 0) == expected
    # The next save finishes or drops the interrupted one and leaves the usual layout, each file verified.
    save_checkpoint(tmp_path, state(9))
    assert load_checkpoint(tmp_path / "last.pt")["trainer"]["iteration"] == 9
    if expected:
        assert load_checkpoint(tmp_path / "prev.pt")["trainer"]["iteration"] == expected
    for name in ("last.pt", "prev.pt"):
        if (tmp_path / name).exists():
            assert (tmp_path / f"{name}.sha256").read_text().strip() == ckpt._sha256(tmp_path / name)
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_crash_between_the_renames_of_best_keeps_a_verifiable_best(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, state(1), name="best", previous=None)
    crash_at(monkeypatch, 1)  # best.pt.tmp -> best.pt done, its digest not yet moved
    with pytest.raises(Crash):
        save_checkpoint(tmp_path, state(2), name="best", previous=None)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "best.pt")["trainer"]["iteration"] == 2
    save_checkpoint(tmp_path, state(3), name="best", previous=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best.pt.sha256"]


def test_rng_state_round_trips_through_a_safe_load(tmp_path):
    import random

    import numpy as np

    saved = rng_state()
    torch.save({"rng": saved}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
