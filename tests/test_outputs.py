"""What the tools write (`--out`, `--json`, `--csv`, `eval.out`): never over their input or a run's files,
over an existing file only with --force, written whole or not at all; a bad path is one line and exit 2."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import torch
from clitools import compose_config
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from resnet_train.cli import eval as eval_cli
from resnet_train.cli import export, plot, report, responses
from resnet_train.engine.run import train
from resnet_train.errors import UserError
from resnet_train.outputs import atomic_output, check_output

TINY = [
    "model.depth=8", "data=synthetic", "data.num_classes=3", "data.image_size=16", "data.train_size=32",
    "data.test_size=8", "trainer.batch_size=16", "trainer.device=cpu", "trainer.progress=false",
    "trainer.precision=fp32", "trainer.max_iters=2", "trainer.eval_every=2", "sched.milestones=[1]",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished two-iteration run of a ResNet-8, trained in this process."""
    run = tmp_path_factory.mktemp("run")
    train(OmegaConf.to_object(compose_config(*TINY)), run)
    return run


def contents(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def exits(main, argv) -> int:
    """The exit code of a tool's main (the argparse tools return it or call sys.exit)."""
    try:
        return main(argv) or 0
    except SystemExit as stop:
        return stop.code


def test_export_never_writes_over_its_checkpoint_or_a_run_file_even_with_force(run_dir, tmp_path, caplog):
    checkpoint = run_dir / "checkpoints" / "last.pt"
    before = contents(run_dir)
    (tmp_path / "link.pt").symlink_to(checkpoint)
    targets = [
        checkpoint, run_dir / "checkpoints" / "last.pt.sha256", run_dir / "checkpoints" / "prev.pt",
        run_dir / "metrics.json", run_dir / ".hydra" / "config.yaml", tmp_path / "link.pt",
    ]  # fmt: skip
    for out in targets:
        for force in ([], ["--force"]):
            caplog.clear()
            assert exits(export.main, [str(checkpoint), "--out", str(out), *force]) == 2
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and str(out) in errors[0] and "\n" not in errors[0]
    assert contents(run_dir) == before


def test_an_existing_file_is_replaced_only_with_force(run_dir, tmp_path, caplog):
    checkpoint = run_dir / "checkpoints" / "last.pt"
    out = tmp_path / "net.pt"
    out.write_text("mine")
    assert exits(export.main, [str(checkpoint), "--out", str(out)]) == 2
    assert out.read_text() == "mine" and "--force" in caplog.text
    assert exits(export.main, [str(checkpoint), "--out", str(out), "--force"]) == 0
    assert torch.load(out).keys() == torch.load(checkpoint)["model"].keys()
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]  # no temporary file left


def test_eval_refuses_its_checkpoint_before_evaluating(run_dir, caplog, capsys):
    checkpoint = run_dir / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()
    assert exits(eval_cli.main, [str(checkpoint), f"eval.out={checkpoint}"]) == 2
    assert exits(eval_cli.main, [str(checkpoint), "--out", str(checkpoint), "--force"]) == 2
    assert checkpoint.read_bytes() == before
    assert "evaluating" not in caplog.text and capsys.readouterr().out == ""


@pytest.mark.parametrize("tool", ["export", "eval", "plot", "report", "responses"])
def test_an_out_that_is_a_directory_or_under_a_file_is_one_line(run_dir, tmp_path, tool, caplog):
    checkpoint = str(run_dir / "checkpoints" / "last.pt")
    (tmp_path / "file").write_text("")
    argv = {
        "export": (export.main, [checkpoint, "--out"]),
        "eval": (eval_cli.main, [checkpoint, "--out"]),
        "plot": (plot.main, [str(run_dir), "--out"]),
        "report": (report.main, [str(run_dir), "--out"]),
        "responses": (responses.main, [checkpoint, "--json"]),
    }
    main, args = argv[tool]
    for out, why in [(tmp_path, "is a directory"), (tmp_path / "file" / "x.png", "is a file, not a folder")]:
        caplog.clear()
        assert exits(main, [*args, str(out)]) == 2
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and why in errors[0], caplog.text


def test_plot_names_the_file_it_writes_and_keeps_an_existing_figure(tmp_path, caplog):
    run = tmp_path / "run"
    with SummaryWriter(str(run)) as writer:
        for step in (1, 2):
            writer.add_scalar("error/train", 0.5, step)
            writer.add_scalar("error/test", 0.6, step)
    caplog.set_level(logging.INFO)
    assert plot.main([str(run), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots.png").is_file() and not (tmp_path / "plots").exists()
    assert f"-> {tmp_path / 'plots.png'}" in caplog.text
    first = (tmp_path / "plots.png").read_bytes()
    assert plot.main([str(run), "--out", str(tmp_path / "plots.png"), "--title", "other"]) == 2
    assert (tmp_path / "plots.png").read_bytes() == first
    assert plot.main([str(run), "--out", str(tmp_path / "plots.png"), "--title", "other", "--force"]) == 0
    assert (tmp_path / "plots.png").read_bytes() != first


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    out = tmp_path / "table.csv"
    out.write_text("old")
    with pytest.raises(UserError, match="table.csv"), atomic_output(check_output(out, force=True)) as partial:
        partial.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_eval_refuses_a_class_count_its_checkpoint_does_not_predict(run_dir, caplog, capsys):
    checkpoint = str(run_dir / "checkpoints" / "last.pt")
    assert exits(eval_cli.main, [checkpoint, "data.num_classes=5"]) == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "data.num_classes=5" in line and "predicts 3 classes" in line and capsys.readouterr().out == ""


def test_responses_names_the_figure_it_writes(run_dir, tmp_path, caplog):
    checkpoint = str(run_dir / "checkpoints" / "last.pt")
    caplog.set_level(logging.INFO)
    assert responses.main([checkpoint, "--out", str(tmp_path / "fig"), "--max-images", "8"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"] and f"-> {tmp_path / 'fig.png'}" in caplog.text
    assert responses.main([checkpoint, "--out", str(tmp_path / "fig.unknown"), "--max-images", "8"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]  # nothing half-written left
