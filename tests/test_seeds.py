"""Seeds read back as one net: grouping by the whole config, the mean with a band, mean ± std with n, the
TensorBoard aggregate over seeds, and a two-seed sweep of two tiny nets end to end (in-process)."""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from pathlib import Path

import pytest
from clitools import make_config, read_scalars
from matplotlib.collections import PolyCollection
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from resnet_train.analysis.claims import REPRODUCED, REVERSED, UNRESOLVED
from resnet_train.analysis.figures import error_figure
from resnet_train.analysis.groups import BAND, group_runs
from resnet_train.analysis.runs import find_runs, load_run
from resnet_train.cli import plot, report
from resnet_train.config import (
    Config,
    DeviceKind,
    FolderData,
    ModelConfig,
    Precision,
    SGDConfig,
    SyntheticData,
    TrainerConfig,
    model_name,
)
from resnet_train.engine.run import train
from resnet_train.engine.schedules import PaperCifarConfig


def stored(config: Config) -> dict:
    """A config as a run stores it (.hydra/config.yaml and the checkpoint: enums by name)."""
    return OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)


def fake_run(
    run_dir: Path, config: Config, *, curves: dict | None = None, precision: str = "fp32", **metrics
) -> Path:
    """A finished run of `config` as resnet-train leaves it: .hydra/config.yaml, events, metrics.json."""
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(stored(config), run_dir / ".hydra" / "config.yaml")
    writer = SummaryWriter(str(run_dir))
    for tag, points in (curves or {}).items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()
    m = config.model
    summary = {
        "model": model_name(m.residual, m.depth), "depth": m.depth,
        "shortcut": m.shortcut if m.residual else None, "dataset": config.data.name,
        "iterations": config.trainer.max_iters, "seed": config.trainer.seed, "precision": precision,
        "train_error": 0.5, "test_error": 0.5, "params": 1000, **metrics,
    }  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    return run_dir


def cifar(seed=0, lr=0.1, depth=20, residual=True, **trainer) -> Config:
    return make_config(
        model=ModelConfig(depth=depth, residual=residual), optim=SGDConfig(lr=lr),
        trainer=TrainerConfig(seed=seed, **trainer),
    )  # fmt: skip


def csv_rows(capsys) -> list[dict]:
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


# --- grouping ---------------------------------------------------------------------------------------------


def test_seeds_of_one_config_are_one_group_and_another_lr_is_another(tmp_path, capsys, caplog):
    sweep = tmp_path / "sweep"
    curves = {"error/train": [(10, 0.5), (20, 0.4)]}
    fake_run(sweep / "a", cifar(seed=0), curves=curves, test_error=0.30)
    # Where the data lies, how often it logs and how many workers read it say nothing about the result.
    moved = cifar(seed=1, log_every=50, checkpoint_every=10, progress=False)
    moved.data.root, moved.data.workers = "/elsewhere", 2
    fake_run(sweep / "b", moved, curves=curves, test_error=0.34)
    fake_run(sweep / "c", cifar(seed=0, lr=0.05), curves=curves, test_error=0.90)  # seed 0 again, another lr
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        assert report.main([str(sweep), "--format", "csv"]) == 0
    rows = {row["name"]: row for row in csv_rows(capsys)}
    assert set(rows) == {"ResNet-20 (optim.lr=0.1)", "ResNet-20 (optim.lr=0.05)"}
    twins, other = rows["ResNet-20 (optim.lr=0.1)"], rows["ResNet-20 (optim.lr=0.05)"]
    assert (twins["runs"], twins["seeds"], other["runs"], other["seeds"]) == ("2", "0/1", "1", "0")
    assert float(twins["test_error_mean"]) == pytest.approx(32.0)
    assert float(twins["test_error_std"]) == pytest.approx(statistics.stdev([30.0, 34.0]), abs=1e-3)
    assert other["test_error_std"] == "" and float(other["test_error_mean"]) == pytest.approx(90.0)
    assert any("differ in more than the net: optim.lr (0.05, 0.1)" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="resnet_train"):  # the figure says it too
        assert plot.main([str(sweep), "--out", str(tmp_path / "fig.png")]) == 0
    assert any("differ in more than the net: optim.lr (0.05, 0.1)" in r.message for r in caplog.records)


def test_runs_differing_in_classes_length_or_precision_are_not_seeds_of_one_net(tmp_path):
    two, ten = (
        make_config(data=FolderData(name="imagefolder", num_classes=k), trainer=TrainerConfig(seed=0))
        for k in (2, 10)
    )  # fmt: skip
    fake_run(tmp_path / "two", two)
    fake_run(tmp_path / "ten", ten)
    fake_run(tmp_path / "short", cifar(seed=0, max_iters=800))
    fake_run(tmp_path / "long", cifar(seed=1, max_iters=1600))
    # Runs from before fp32 was the default stored precision=auto, which resolved differently on two
    # machines: bf16 and fp32 runs are not twins.
    for name, seed in (("bf16", 0), ("fp32", 1)):
        fake_run(tmp_path / name, cifar(seed=seed, max_iters=5), precision=name)
        stored_config = tmp_path / name / ".hydra" / "config.yaml"
        OmegaConf.save({**OmegaConf.load(stored_config), "trainer": {
            **OmegaConf.load(stored_config).trainer, "precision": "auto"}}, stored_config)  # fmt: skip
    groups = group_runs([load_run(path, curves=False) for path in find_runs([tmp_path])])
    assert sorted(len(group.runs) for group in groups) == [1] * 6
    # Each name says what tells its group apart from the other ResNet-20s.
    assert sum("data.num_classes=2," in group.name for group in groups) == 1
    assert sum("data.num_classes=10," in group.name for group in groups) == 1
    auto = [g.settings["trainer.precision"] for g in groups if g.settings["trainer.max_iters"] == 5]
    assert sorted(auto) == ["bf16", "fp32"]


def test_a_report_over_mixed_precisions_says_so(tmp_path, capsys):
    fake_run(tmp_path / "a", cifar(seed=0), precision="bf16")
    fake_run(tmp_path / "b", cifar(seed=1), precision="fp32")
    fake_run(tmp_path / "c", cifar(seed=2), precision="fp32")
    assert report.main([str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "MIXED precision: bf16 (1 run), fp32 (2 runs)" in text
    fake = tmp_path / "only-fp32"
    fake_run(fake / "a", cifar(seed=0))
    assert report.main([str(fake)]) == 0 and "Precision fp32." in capsys.readouterr().out


# --- the TensorBoard aggregate ----------------------------------------------------------------------------


SEED_CURVES = [  # three seeds' training error; seed 2 stopped at iteration 20
    {"error/train": [(10, 0.9), (20, 0.6), (30, 0.4)], "error/test": [(20, 0.7)], "loss/train": [(10, 2.0)]},
    {"error/train": [(10, 0.8), (20, 0.5), (30, 0.2)], "error/test": [(20, 0.5)]},
    {"error/train": [(10, 0.7), (20, 0.7)], "error/test": [(20, 0.6)]},
]


def test_the_aggregate_holds_mean_min_and_max_per_iteration_and_is_replaced_on_rerun(tmp_path):
    sweep = tmp_path / "sweep"
    for seed, curves in enumerate(SEED_CURVES):
        fake_run(sweep / str(seed), cifar(seed=seed), curves=curves, iterations=curves["error/train"][-1][0])
    fake_run(sweep / "plain", cifar(residual=False), curves={"error/train": [(10, 0.95)]})
    for _ in range(2):  # the second call replaces the first: no point twice
        assert report.main([str(sweep), "--tensorboard"]) == 0
    folders = sorted(p.name for p in (sweep / "aggregate").iterdir())
    assert folders == ["ResNet-20", "plain-20"]
    scalars = read_scalars(sweep / "aggregate" / "ResNet-20")
    edges = ("mean", "min", "max")
    assert set(scalars) == {f"error/{split}/{edge}" for split in ("train", "test") for edge in edges}
    # Seed 2 stopped at 20 (pre-empted, say): left out, so the band is over seeds 0 and 1, by hand.
    assert [s for s, _ in scalars["error/train/mean"]] == [10, 20, 30]
    assert [v for _, v in scalars["error/train/mean"]] == pytest.approx([0.85, 0.55, 0.3])
    assert [v for _, v in scalars["error/train/min"]] == pytest.approx([0.8, 0.5, 0.2])
    assert [v for _, v in scalars["error/train/max"]] == pytest.approx([0.9, 0.6, 0.4])
    assert scalars["error/test/mean"] == [(20, pytest.approx(0.6))]
    # The readers never take the aggregate for runs.
    assert {p.name for p in find_runs([sweep])} == {"0", "1", "2", "plain"}
    # A run of one's own named "aggregate" (it holds a metrics.json) is a run like any other.
    fake_run(tmp_path / "mine" / "aggregate", cifar(seed=5))
    assert [p.name for p in find_runs([tmp_path / "mine"])] == ["aggregate"]


def test_a_folder_named_aggregate_that_is_not_ours_is_left_alone(tmp_path, caplog):
    fake_run(tmp_path / "run", cifar(), curves={"error/train": [(1, 0.5)]})
    (tmp_path / "aggregate").mkdir()
    (tmp_path / "aggregate" / "notes.txt").write_text("mine")
    with caplog.at_level(logging.ERROR, logger="resnet_train"):
        assert report.main([str(tmp_path), "--tensorboard"]) == 2
    assert (tmp_path / "aggregate" / "notes.txt").read_text() == "mine"
    assert any("notes.txt" in r.message and "left alone" in r.message for r in caplog.records)


# --- end to end: two seeds of two tiny nets --------------------------------------------------------------


def tiny(seed: int, residual: bool) -> Config:
    return make_config(
        model=ModelConfig(depth=8, residual=residual),
        data=SyntheticData(num_classes=10, image_size=16, train_size=64,
                        test_size=32),
        sched=PaperCifarConfig(milestones=[3]),
        trainer=TrainerConfig(batch_size=16, max_iters=4, eval_every=2, log_every=2, seed=seed,
                              device=DeviceKind.cpu, precision=Precision.fp32, progress=False),
    )  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """plain-8 and ResNet-8, seeds 0 and 1, trained in-process (their configs come back from checkpoints)."""
    root = tmp_path_factory.mktemp("sweep")
    for number, (residual, seed) in enumerate((r, s) for r in (False, True) for s in (0, 1)):
        train(tiny(seed, residual), root / str(number))
    return root


@pytest.mark.slow  # trains four tiny runs (about 20 s on 2 loaded cores), once for the module
def test_metrics_say_how_many_images_each_error_counted(sweep):
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert metrics["test_error_images"] == 32  # the test set
    assert metrics["train_error_images"] == 2 * 16  # the last logging window: log_every x batch


@pytest.mark.slow
def test_the_figure_draws_each_net_as_a_mean_with_a_band(sweep):
    runs = [load_run(path) for path in find_runs([sweep])]
    figure = error_figure(runs, title="tiny")
    assert "precision fp32" in figure.get_suptitle() and BAND in figure.get_suptitle()
    for ax, name in zip(figure.axes, ("plain-8", "ResNet-8")):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == [f"{name} (n=2)", "training error", "test error", f"band: {BAND}"]
        assert len(ax.get_lines()) == 2  # one mean per split, not one line per seed
        group = [run for run in runs if run.label == name]
        spread = sum(
            any(a != b for (_, a), (_, b) in zip(group[0].curves[tag], group[1].curves[tag]))
            for tag in ("error/train", "error/test")
        )
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == spread
    assert any(isinstance(c, PolyCollection) for ax in figure.axes for c in ax.collections)
    assert plot.main([str(sweep), "--out", str(sweep / "fig.png")]) == 0


@pytest.mark.slow
def test_the_report_gives_mean_std_over_two_seeds_an_aggregate_and_a_verdict_per_claim(sweep, capsys):
    assert report.main([str(sweep), "--tensorboard"]) == 0
    text = capsys.readouterr().out
    runs = [load_run(path, curves=False) for path in find_runs([sweep])]
    for name in ("plain-8", "ResNet-8"):
        tests = [100 * run.metrics["test_error"] for run in runs if run.label == name]
        line = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[6] == "2" and cells[8] == f"{statistics.mean(tests):.2f} ± {statistics.stdev(tests):.2f}"
    claims = [line for line in text.split("## The paper's claims")[1].splitlines() if "equal depth" in line]
    assert len(claims) == 1
    assert claims[0].strip("|").split("|")[6].strip() in (REPRODUCED, REVERSED, UNRESOLVED)
    assert "(n=2)" in claims[0] and "one seed" not in claims[0]
    for name in ("plain-8", "ResNet-8"):
        scalars = read_scalars(sweep / "aggregate" / name)
        assert [step for step, _ in scalars["error/train/mean"]] == [2, 4]
        assert [step for step, _ in scalars["error/test/max"]] == [2, 4]
