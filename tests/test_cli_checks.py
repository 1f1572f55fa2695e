"""Bad input at the edge of the tools, each one line naming the setting or file and what to do: worker counts
the machine cannot run (the core and GPU counts are forced here, never read from the host), seeds torch
cannot take, overrides Hydra cannot read (and every command the README shows can be read), trainer.resume
values that name no checkpoint file, a corrupt CIFAR archive offline, resnet-info's sizes, and
resnet-responses' hint."""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import pytest
from clitools import compose_config
from test_responses import plain_config, write_checkpoint

from resnet_train.checks import composing_error
from resnet_train.cli import info, responses
from resnet_train.config import MAX_SEED, check_ranges, config_from_plain
from resnet_train.data import load_splits
from resnet_train.data.split import epoch_generator
from resnet_train.engine import launch as launcher
from resnet_train.engine.checkpoint import CheckpointError, load_checkpoint
from resnet_train.engine.launch import check_resume, check_worker_count
from resnet_train.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def config(*overrides: str):
    return config_from_plain({}, list(overrides))


# ---- trainer.devices against the machine -------------------------------------------------------------------
def test_cpu_workers_are_capped_at_the_cores_and_gpu_workers_at_the_gpus():
    cpu = config("trainer.device=cpu", "trainer.devices=3")
    with pytest.raises(UserError, match="trainer.devices=3 CPU workers, but this machine has 2 cores"):
        check_worker_count(cpu, cores=2, gpus=4)
    check_worker_count(cpu, cores=4, gpus=0)
    auto = config("trainer.devices=3")  # trainer.device=auto: the GPUs if there are any
    with pytest.raises(UserError, match="2 cores"):
        check_worker_count(auto, cores=2, gpus=0)
    with pytest.raises(UserError, match="trainer.devices=3, but 2 GPUs are visible"):
        check_worker_count(auto, cores=64, gpus=2)
    check_worker_count(auto, cores=2, gpus=4)


def test_the_launcher_refuses_first_and_logs_before_spawning(tmp_path, monkeypatch, caplog):
    workers = config("trainer.device=cpu", "trainer.devices=3", "trainer.batch_size=96")
    monkeypatch.setattr(launcher.torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    with pytest.raises(UserError, match="has 2 cores"):
        launcher.launch(workers, tmp_path / "run")
    assert not (tmp_path / "run").exists()

    class Spawned(Exception):
        pass

    def spawn(*args, **kwargs):
        raise Spawned

    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 8)
    monkeypatch.setattr("torch.multiprocessing.start_processes", spawn)
    with caplog.at_level(logging.INFO, logger="resnet_train"), pytest.raises(Spawned):
        launcher.launch(workers, tmp_path / "run")
    assert "starting 3 workers (gloo, CPU)" in caplog.text


# ---- seeds -------------------------------------------------------------------------------------------------
def test_a_seed_torch_cannot_take_is_refused_and_the_largest_accepted_one_works():
    with pytest.raises(UserError, match=rf"trainer.seed={MAX_SEED + 1} \(must be in \[0, {MAX_SEED}\]\)"):
        check_ranges(config(f"trainer.seed={MAX_SEED + 1}"))
    check_ranges(config(f"trainer.seed={MAX_SEED}"))
    epoch_generator(MAX_SEED, 10**9)  # no "Overflow when unpacking long long"
    with pytest.raises(ValueError, match="Overflow"):  # the limit is real: past it torch refuses the seed
        epoch_generator(2**64 // 1_000_003 + 1, 0)


# ---- overrides Hydra cannot read ---------------------------------------------------------------------------
@pytest.mark.parametrize("override", ["data.root=~/data/cifar10", "data.root=/data/données"])
def test_an_unreadable_override_is_one_line_with_the_quoting_that_works(override):
    from hydra.errors import OverrideParseException

    with pytest.raises(OverrideParseException) as error:
        compose_config("model=resnet20", override)
    line = composing_error(error.value)
    key, _, value = override.partition("=")
    assert line.startswith(f"cannot read the override {override}") and "quoted value" in line
    compose_config("model=resnet20", f"{key}='{value}'")  # quoted, as the line says, it composes


def readme_commands() -> list[list[str]]:
    """The overrides of every resnet-train command the README and docs/ show (code blocks, inline code)."""
    text = "\n".join(path.read_text() for path in [README, *sorted((README.parent / "docs").glob("*.md"))])
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    lines += re.findall(r"`(resnet-train [^`]*)`", text)
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        starts = [i for i, word in enumerate(words) if word.rstrip(")").endswith("resnet-train")]
        if starts:
            commands.append(words[starts[0] + 1 :])
    return commands


def first_job(command: list[str]) -> list[str]:
    """The overrides of a command's first job: a sweep `key=a,b` as `key=a`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words, options = [], iter(command)
    for word in options:
        if word in ("--cfg", "-c", "--info", "-i"):
            next(options, None)  # and its value
        elif not word.startswith("-"):
            words.append(word)
    overrides = OverridesParser.create().parse_overrides(words)
    return [
        f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else word
        for o, word in zip(overrides, words)
    ]


def test_every_resnet_train_command_in_the_readme_composes():
    """Each command of the README and docs/ (a sweep's first job) composes against the options' schemas."""
    from hydra.errors import HydraException

    commands = readme_commands()
    assert len(commands) > 20
    failed = []
    for command in commands:
        try:
            compose_config(*first_job(command))
        except HydraException as error:
            failed.append(f"{' '.join(command)}: {composing_error(error)}")
    assert failed == []


# ---- trainer.resume ----------------------------------------------------------------------------------------
def test_a_resume_value_that_names_no_checkpoint_file_says_what_to_give(tmp_path):
    with pytest.raises(UserError, match="trainer.resume is empty: give auto"):
        check_resume("")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(
        CheckpointError, match=r"run is a directory; give a checkpoint file, e\.g\. .*last.pt"
    ):
        load_checkpoint(tmp_path / "run")


# ---- data --------------------------------------------------------------------------------------------------
def test_a_corrupt_cifar_archive_offline_is_named_and_nothing_is_downloaded(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"half an archive")

    def download(*args, **kwargs):
        raise AssertionError("went to the network")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", download)
    with pytest.raises(UserError, match=r"cifar-10-python\.tar\.gz is corrupt .*data\.download=true"):
        load_splits("cifar10", tmp_path, download=False, num_classes=10)


def test_responses_names_its_own_option_for_the_data(tmp_path, caplog):
    stored = plain_config(model={"depth": 8}, data={"name": "cifar10", "root": str(tmp_path / "moved")})
    path, _ = write_checkpoint(tmp_path / "run" / "checkpoints", stored, 0)
    assert responses.main([str(path)]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "--data-root DIR" in line and "data.root=" not in line


# ---- resnet-info -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv", [["--input-size", "0"], ["--cifar-input-size", "-8"], ["--num-classes", "0"]], ids=str
)
def test_info_refuses_sizes_and_class_counts_out_of_range(argv, capsys):
    assert info.main(["resnet20", "resnet18", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and f"{argv[0]} {argv[1]}" in captured.err
