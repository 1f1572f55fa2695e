"""Reading runs back, the error-curve figure (resnet-plot) and the Table 6-style report (resnet-report).

Fixture runs are written the way `resnet-train` writes them (TensorBoard events with SummaryWriter,
metrics.json, .hydra/config.yaml); one slow test trains the two jobs of a real tiny sweep in-process.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from pathlib import Path

import pytest
from clitools import read_scalars
from matplotlib.image import imread
from paper import TABLE6_TEST_ERROR
from torch.utils.tensorboard import SummaryWriter

from resnet_train.analysis.figures import _panels, error_figure
from resnet_train.analysis.runs import find_runs, load_run, read_curves
from resnet_train.cli import plot, report, responses
from resnet_train.config import parse_model_name

TRAIN = [(100 * i, 0.9 - 0.05 * i) for i in range(1, 11)]
TEST = [(500, 0.7), (1000, 0.45)]


def write_run(
    run_dir: Path,
    model: str = "resnet20",
    *,
    dataset: str = "cifar10",
    shortcut: str | None = "A",
    seed: int = 0,
    curves: dict | None = None,
    metrics: dict | None = None,
    finished: bool = True,
    hydra_config: bool = True,
) -> Path:
    """A run directory as resnet-train leaves it; `finished=False` leaves out metrics.json (still running)."""
    residual, depth = parse_model_name(model)
    run_dir.mkdir(parents=True)
    curves = {"error/train": TRAIN, "error/test": TEST} if curves is None else curves
    if curves:
        writer = SummaryWriter(str(run_dir))
        for tag, points in curves.items():
            for step, value in points:
                writer.add_scalar(tag, value, step)
        writer.close()
    if hydra_config:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(
            f"model:\n  family: cifar\n  depth: {depth}\n  residual: {str(residual).lower()}\n"
            f"  shortcut: {shortcut or 'A'}\ndata:\n  name: {dataset}\ntrainer:\n  seed: {seed}\n"
        )
    if finished:
        summary = {
            "model": model, "family": "cifar", "depth": depth, "shortcut": shortcut if residual else None,
            "dataset": dataset, "synthetic": dataset == "synthetic", "iterations": 1000,
            "train_error": 0.01, "train_loss": 0.05, "test_error": 0.08, "test_loss": 0.3, "val_error": None,
            "best_val_error": None, "params": 269722 if depth == 20 else 123, "seed": seed,
        }  # fmt: skip
        summary.update(metrics or {})
        (run_dir / "metrics.json").write_text(json.dumps(summary))
    return run_dir


def events_file(run_dir: Path) -> Path:
    return next(run_dir.glob("events.out.tfevents.*"))


# --- finding and reading runs ------------------------------------------------------------------------------


def test_find_runs_searches_sweeps_recursively(tmp_path):
    a = write_run(tmp_path / "sweep" / "a")
    b = write_run(tmp_path / "sweep" / "deeper" / "b", finished=False)  # in progress: events only
    c = write_run(tmp_path / "sweep" / "c", curves={})  # metrics.json only
    (tmp_path / "sweep" / "not_a_run").mkdir()
    single = write_run(tmp_path / "single")
    assert find_runs([tmp_path / "sweep"]) == sorted(p.resolve() for p in (a, b, c))
    assert find_runs([single, tmp_path / "sweep" / "a"]) == sorted([single.resolve(), a.resolve()])
    with pytest.raises(FileNotFoundError):
        find_runs([tmp_path / "missing"])


def test_a_run_is_named_by_metrics_then_config_then_directory(tmp_path):
    finished = load_run(write_run(tmp_path / "x", "plain56", shortcut=None, seed=3))
    assert (finished.model, finished.residual, finished.depth, finished.seed) == ("plain56", False, 56, 3)
    assert finished.label == "plain-56" and finished.shortcut is None
    running = load_run(write_run(tmp_path / "y", "resnet110", finished=False))
    assert (running.model, running.label, running.shortcut, running.dataset) == (
        "resnet110", "ResNet-110", "A", "cifar10",
    )  # fmt: skip
    anonymous = load_run(write_run(tmp_path / "my-run", finished=False, hydra_config=False))
    assert anonymous.model == anonymous.label == "my-run" and anonymous.residual is None


def test_curves_keep_every_point(tmp_path):
    # TensorBoard's reader samples 10,000 points per tag unless told otherwise (docs/pitfalls.md).
    points = [(step, step / 20000) for step in range(1, 10_201)]
    run = load_run(write_run(tmp_path / "long", curves={"error/train": points}))
    steps, values = zip(*run.curves["error/train"])
    assert list(steps) == [step for step, _ in points]
    assert list(values) == pytest.approx([value for _, value in points], rel=1e-6)  # stored as float32


def test_a_cut_events_file_keeps_the_points_before_the_cut(tmp_path):
    run_dir = write_run(tmp_path / "cut", finished=False)
    events = events_file(run_dir)
    events.write_bytes(events.read_bytes()[:-30])  # a killed run: the last record is incomplete
    curves = read_curves(run_dir)
    assert 0 < len(curves["error/train"]) + len(curves.get("error/test", [])) < len(TRAIN) + len(TEST)


def test_damaged_metrics_json_is_a_warning(tmp_path, caplog):
    run_dir = write_run(tmp_path / "bad")
    (run_dir / "metrics.json").write_text('{"model": "resnet20", "test_err')
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        run = load_run(run_dir)
    assert run.metrics is None and run.model == "resnet20"  # from .hydra/config.yaml
    assert any(str(run_dir) in r.message and "metrics.json" in r.message for r in caplog.records)


# --- resnet-plot -------------------------------------------------------------------------------------------


def test_plain_and_residual_nets_get_a_panel_each(tmp_path):
    runs = [
        load_run(write_run(tmp_path / name, name, curves={})) for name in ("plain20", "resnet20", "plain56")
    ]
    (title_left, left), (title_right, right) = _panels(runs)
    assert (title_left, title_right) == ("plain networks", "ResNets")
    assert {r.model for r in left} == {"plain20", "plain56"} and [r.model for r in right] == ["resnet20"]
    assert len(_panels(runs[1:2])) == 1


def test_plot_draws_a_nonblank_png_and_warns_about_broken_runs(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_run(sweep / f"resnet20-{seed}", seed=seed)
    write_run(sweep / "plain20", "plain20", shortcut=None)
    write_run(sweep / "running", "resnet56", finished=False)
    no_events = write_run(sweep / "no_events", "resnet32", curves={})
    garbage = write_run(sweep / "garbage", "plain32", shortcut=None)
    events_file(garbage).write_bytes(b"\x93not an events file" * 7)
    out = tmp_path / "figure" / "fig6.png"
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        assert plot.main([str(sweep), "--out", str(out), "--title", "test"]) == 0
    warned = " ".join(r.message for r in caplog.records)
    assert str(no_events.resolve()) in warned and str(garbage.resolve()) in warned
    image = imread(out)
    assert image.shape[:2] == (675, 1800)  # two panels: 12 x 4.5 inches at 150 dpi
    assert image[..., :3].std() > 0.05  # not blank


def test_error_figure_shares_the_y_range_and_keys_colour_to_net_and_style_to_split(tmp_path):
    plain = [(100 * i, 0.85 - 0.01 * i) for i in range(1, 26)]  # up to 85%: the left panel's top
    runs = [
        load_run(write_run(tmp_path / "plain20", "plain20", shortcut=None, curves={"error/train": plain})),
        load_run(write_run(tmp_path / "resnet20", "resnet20")),  # up to 85% train, 70% test
    ]
    figure = error_figure(runs)
    left, right = figure.axes
    assert left.get_ylim() == right.get_ylim() and left.get_ylim()[0] == 0
    legend = [(type(h).__name__, t.get_text()) for h, t in zip(right.get_legend().legend_handles,
                                                               right.get_legend().get_texts())]  # fmt: skip
    # The net is a colour swatch, not a line; the line styles name the splits.
    assert legend == [("Rectangle", "ResNet-20"), ("Line2D", "training error"), ("Line2D", "test error")]
    assert [h.get_linestyle() for h in right.get_legend().legend_handles[1:]] == ["--", "-"]


@pytest.mark.parametrize(("last", "label", "tick_max"), [(2500, "iter.", 2500), (64000, "iter. (1e4)", 6.4)])
def test_error_figure_x_ticks_read_well_at_every_run_length(tmp_path, last, label, tick_max):
    curve = [(last // 4 * i, 0.5) for i in range(1, 5)]
    figure = error_figure([load_run(write_run(tmp_path / "run", curves={"error/train": curve}))])
    (ax,) = figure.axes
    assert ax.get_xlabel() == label
    assert max(line.get_xdata().max() for line in ax.get_lines()) == pytest.approx(tick_max)


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".pdf", b"%PDF")])
def test_plot_format_follows_the_extension(tmp_path, suffix, magic):
    write_run(tmp_path / "run")
    out = tmp_path / f"curves{suffix}"
    assert plot.main([str(tmp_path / "run"), "--out", str(out), "--ymax", "20"]) == 0
    assert magic in out.read_bytes()[:400]


def test_plot_without_runs_is_an_error_not_a_crash(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    assert plot.main([str(tmp_path / "empty")]) == 2
    assert plot.main([str(tmp_path / "missing")]) == 2
    write_run(tmp_path / "only_metrics", curves={})
    assert plot.main([str(tmp_path / "only_metrics"), "--out", str(tmp_path / "x.png")]) == 2


# --- resnet-report -----------------------------------------------------------------------------------------

SEEDS = {0: (0.0812, 0.0031), 1: (0.0845, 0.0022), 2: (0.0799, 0.0040)}  # seed: (test error, train error)


def report_fixture(root: Path) -> Path:
    sweep = root / "sweep"
    for seed, (test_error, train_error) in SEEDS.items():
        write_run(
            sweep / f"r20-{seed}", seed=seed, metrics={"test_error": test_error, "train_error": train_error}
        )
    write_run(sweep / "p20", "plain20", shortcut=None, metrics={"test_error": 0.095, "train_error": 0.007})
    write_run(sweep / "r20-synthetic", dataset="synthetic", metrics={"test_error": 0.5})
    write_run(sweep / "r34B", "resnet34", dataset="imagenet", shortcut="B", metrics={"test_error": 0.2601})
    write_run(sweep / "running", "resnet44", finished=False)
    return sweep


def test_report_numbers_are_the_metrics_over_seeds(tmp_path, capsys, caplog):
    sweep = report_fixture(tmp_path)
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        assert report.main([str(sweep), "--format", "csv"]) == 0
    assert any("running" in r.message and "metrics.json" in r.message for r in caplog.records)
    rows = {(r["model"], r["dataset"]): r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert set(rows) == {
        ("resnet20", "cifar10"), ("plain20", "cifar10"), ("resnet20", "synthetic"), ("resnet34", "imagenet"),
    }  # fmt: skip
    r20 = rows["resnet20", "cifar10"]
    tests = [100 * test for test, _ in SEEDS.values()]
    trains = [100 * train for _, train in SEEDS.values()]
    assert int(r20["runs"]) == 3 and int(r20["depth"]) == 20 and int(r20["params"]) == 269722
    # Percent rounded to 3 decimals: 57.305, not 57.30468749999999.
    assert r20["test_error_mean"] == str(round(statistics.mean(tests), 3))
    assert r20["test_error_std"] == str(round(statistics.stdev(tests), 3))
    assert float(r20["test_error_best"]) == pytest.approx(min(tests), abs=5e-4)
    assert r20["train_error_mean"] == str(round(statistics.mean(trains), 3))
    assert r20["train_error_std"] == str(round(statistics.stdev(trains), 3))
    assert all(len(r20[key].partition(".")[2]) <= 3 for key in ("test_error_mean", "train_error_std"))
    # The paper's number only for the same dataset, model and shortcut option.
    assert float(r20["paper_test_error"]) == TABLE6_TEST_ERROR["resnet20"]
    assert rows["plain20", "cifar10"]["paper_test_error"] == ""  # plain nets are only drawn (Fig. 6)
    assert rows["resnet20", "synthetic"]["paper_test_error"] == ""
    assert float(rows["resnet34", "imagenet"]["paper_test_error"]) == 24.52  # Table 3, option B
    p20 = rows["plain20", "cifar10"]
    assert p20["test_error_std"] == "" and float(p20["test_error_mean"]) == pytest.approx(9.5)


def test_report_markdown_shows_mean_std_best_and_the_paper(tmp_path, capsys):
    sweep = report_fixture(tmp_path)
    out = tmp_path / "table.md"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    text = out.read_text()
    tests = [100 * test for test, _ in SEEDS.values()]
    # Three datasets hold a ResNet-20 each: the rows' names say which setting tells them apart.
    row = "| ResNet-20 (data.name=cifar10) | cifar10"
    line = next(line for line in text.splitlines() if line.startswith(row))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[3:7] == ["20", "269,722", "1,000", "3"]
    assert cells[8] == f"{statistics.mean(tests):.2f} ± {statistics.stdev(tests):.2f}"
    assert cells[9:] == [f"{min(tests):.2f}", "8.75"]
    assert "| plain-20 | cifar10 | – |" in text and "Table 6" in text


def test_a_shorter_seed_or_one_without_its_errors_is_named_and_left_out_everywhere(tmp_path, capsys, caplog):
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_run(sweep / f"r20-{seed}", seed=seed, metrics={"test_error": 0.08 + seed / 100})
    # Pre-empted at 500 and not yet resumed: no metrics.json, curves to 500 only.
    short = {"error/train": TRAIN[:5], "error/test": TEST[:1]}
    write_run(sweep / "r20-short", seed=2, finished=False, curves=short)
    write_run(sweep / "r20-nan", seed=3, metrics={"test_error": float("nan")})
    write_run(sweep / "r20-none", seed=4, metrics={"test_error": None})
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        assert report.main([str(sweep), "--format", "csv", "--tensorboard"]) == 0
        figure = error_figure([load_run(path) for path in find_runs([sweep])])
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["runs"] == "2" and row["seeds"] == "0/1"
    assert float(row["test_error_mean"]) == pytest.approx(8.5)
    warned = " ".join(r.message for r in caplog.records)
    assert all(str(sweep / name) in warned for name in ("r20-short", "r20-nan", "r20-none"))
    legend = [text.get_text() for ax in figure.axes for text in ax.get_legend().get_texts()]
    assert "ResNet-20 (n=2)" in legend
    aggregate = read_scalars(sweep / "aggregate" / "ResNet-20")
    assert aggregate["error/train/mean"][-1][0] == TRAIN[-1][0]  # not cut where the short seed stopped


def test_an_unreadable_config_is_named_not_listed_as_settings_that_differ(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    write_run(sweep / "r20", metrics={"test_error": 0.08})
    write_run(sweep / "p20", "plain20", shortcut=None, metrics={"test_error": 0.09})
    (sweep / "p20" / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    with caplog.at_level(logging.WARNING, logger="resnet_train"):
        assert report.main([str(sweep)]) == 0
    warned = [r.message for r in caplog.records]
    assert any(str(sweep / "p20") in m and ".hydra/config.yaml" in m for m in warned)
    assert not any("differ in more than the net" in m for m in warned)
    assert any("1 group(s) of runs have no readable config" in m for m in warned)


def test_report_judges_a_table_of_seeds_by_the_same_rule(tmp_path, capsys):
    def table(rows):
        path = tmp_path / "seeds.csv"
        path.write_text("net,seed,train_error,test_error\n" + "".join(f"{row}\n" for row in rows))
        assert report.main(["--seeds", str(path)]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if "lower test error" in line)

    worked = table(["resnet56,0,1,7.1", "resnet56,1,1,7.4", "resnet20,0,2,8.3", "resnet20,1,2,8.9"])
    assert "| 1.47 | 0.0917 | not resolved |" in worked
    five = [f"resnet56,{i},1,{6.9 + i / 20}" for i in range(5)]
    five += [f"resnet20,{i},2,{8.6 + i / 20}" for i in range(5)]
    assert "| reproduced |" in table(five)
    one = table(["resnet56,0,1,7.1", "resnet20,0,2,8.9"])
    assert "no verdict" in one and "reproduced" not in one


HEAD = "net,seed,train_error,test_error\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("net,seed,test_error\nresnet56,0,7\n", "no column train_error"),
        (f"{HEAD}resnet5x,0,1,7\n", "seeds.csv:2: 'resnet5x' is not a net's name"),
        (f"{HEAD}resnet56,0,1,seven\n", "seeds.csv:2: test_error 'seven' is not a number"),
        (f"{HEAD}resnet56,0,1,7\nresnet56,0,1,8\n", "seeds.csv:3: resnet56 has seed 0 twice"),
        (f"{HEAD}resnet56,0,1,0.07\nresnet56,1,1,107\n", "107 is not an error in percent"),
    ],
)
def test_a_bad_table_of_seeds_is_one_line_naming_the_place(tmp_path, caplog, text, message):
    (tmp_path / "seeds.csv").write_text(text)
    with caplog.at_level(logging.ERROR, logger="resnet_train"):
        assert report.main(["--seeds", str(tmp_path / "seeds.csv")]) == 2
    assert [r.message for r in caplog.records if message in r.message]


def test_report_without_finished_runs_is_an_error(tmp_path):
    write_run(tmp_path / "running", finished=False)
    assert report.main([str(tmp_path)]) == 2


# --- end to end: what a real tiny sweep leaves -----------------------------------------------------------


@pytest.mark.slow
def test_plot_report_and_responses_of_a_real_sweep(tmp_path, train_job):
    """The two jobs of `resnet-train -m experiment=cifar_plain_vs_resnet` with the models replaced on the
    command line (as scripts/fig6.sh does), trained in-process, then the three tools on what they left."""
    sweep = tmp_path / "sweep"
    for number, model in enumerate(["resnet20", "plain20"]):
        train_job(
            "experiment=cifar_plain_vs_resnet", f"model={model}", "model.depth=8", "data=synthetic",
            "data.train_size=64", "data.test_size=32", "data.image_size=16", "trainer.batch_size=16",
            "trainer.max_iters=4", "trainer.eval_every=2", "trainer.log_every=2", "trainer.device=cpu",
            "trainer.progress=false", run_dir=sweep / str(number), tiny=False,
        )  # fmt: skip
    runs = [load_run(path) for path in find_runs([sweep])]
    assert sorted(run.model for run in runs) == ["plain8", "resnet8"]
    for run in runs:
        assert [step for step, _ in run.curves["error/train"]] == [2, 4]
        assert [step for step, _ in run.curves["error/test"]] == [2, 4]

    out = tmp_path / "fig6.png"
    assert plot.main([str(sweep), "--out", str(out)]) == 0
    image = imread(out)
    assert image.shape[:2] == (675, 1800) and image[..., :3].std() > 0.05

    table = tmp_path / "table.csv"
    assert report.main([str(sweep), "--format", "csv", "--out", str(table)]) == 0
    rows = {row["model"]: row for row in csv.DictReader(table.open())}
    for run in runs:
        assert float(rows[run.model]["test_error_mean"]) == pytest.approx(100 * run.metrics["test_error"])
        assert float(rows[run.model]["train_error_mean"]) == pytest.approx(100 * run.metrics["train_error"])
        assert int(rows[run.model]["params"]) == run.metrics["params"]

    # The checkpoints the engine wrote are readable by resnet-responses (config enums by name, weights).
    numbers = tmp_path / "fig7.json"
    checkpoints = [str(run.path / "checkpoints" / "last.pt") for run in runs]
    assert responses.main([*checkpoints, "--json", str(numbers)]) == 0
    results = json.loads(numbers.read_text())
    assert [r["images"] for r in results] == [32, 32] and all(len(r["layers"]) == 7 for r in results)
