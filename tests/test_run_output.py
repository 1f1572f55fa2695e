"""What a user reads: the training lines without a terminal, the start-up and end-of-run lines, one log
format for every tool, the project's --help page, and the hint that a preset's sweep needs -m."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from clitools import TINY, console_script, run_cli

from resnet_train.engine.logger import rate

LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]\[(INFO|WARNING|ERROR)\] ")
TRAIN_LINE = re.compile(
    r"iteration (\d+)/8 \| loss [\d.]+ \| train error [\d.]+% \| lr 0\.1 \| ([\d.,]+) images/s "
    r"\| elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d$"
)


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    """A tiny run of an experiment preset without -m, its bar on but stdout a pipe (as under SLURM)."""
    run_dir = tmp_path_factory.mktemp("preset") / "run"
    args = [arg for arg in TINY if arg != "trainer.progress=false"]
    result = run_cli(*args, "experiment=cifar_plain_vs_resnet", "trainer.max_iters=8", "trainer.log_every=4",
                     "trainer.eval_every=8", f"hydra.run.dir={run_dir}")  # fmt: skip
    assert result.returncode == 0, result.stdout
    return result.stdout.splitlines(), run_dir


@pytest.mark.slow
def test_without_a_terminal_every_logging_point_is_one_line_in_the_console_and_the_log(preset_run):
    lines, run_dir = preset_run
    assert [int(m[1]) for line in lines if (m := TRAIN_LINE.search(line))] == [4, 8]
    logged = (run_dir / "train.log").read_text().splitlines()
    assert [int(m[1]) for line in logged if (m := TRAIN_LINE.search(line))] == [4, 8]


@pytest.mark.slow
def test_the_run_directory_holds_hydras_config_and_the_log(preset_run):
    _, run_dir = preset_run
    assert (run_dir / "train.log").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow
def test_the_log_and_metrics_json_report_the_same_images_per_s(preset_run):
    lines, run_dir = preset_run
    last = [m[2] for line in lines if (m := TRAIN_LINE.search(line))][-1]
    assert last == rate(json.loads((run_dir / "metrics.json").read_text())["images_per_s"])


@pytest.mark.slow
def test_start_up_says_what_loads_and_the_end_is_a_short_summary(preset_run):
    lines, run_dir = preset_run
    text = "\n".join(lines)
    assert "resnet8 in fp32 on cpu: loading synthetic (generated images) and building the net" in text
    assert re.search(r"data and model ready in [\d.]+ s", text)
    assert re.search(r"done \(SYNTHETIC DATA\): resnet8 on synthetic, 8 iterations in \d+:\d\d:\d\d", text)
    assert re.search(r"final train error [\d.]+%, test error [\d.]+%$", text, re.M)
    assert f"tensorboard --logdir {run_dir}" in text
    assert '"model"' not in text  # the JSON lives in metrics.json only
    assert json.loads((run_dir / "metrics.json").read_text())["iterations"] == 8


@pytest.mark.slow
def test_every_log_line_of_resnet_train_has_the_one_format(preset_run):
    lines, _ = preset_run
    leveled = [line for line in lines if re.search(r"INFO|WARNING|ERROR", line)]
    assert len(leveled) >= 8 and all(LOG_LINE.match(line) for line in leveled), leveled


@pytest.mark.slow
def test_a_preset_sweep_without_m_trains_one_job_and_says_how_to_run_all(preset_run):
    lines, _ = preset_run
    hints = [line for line in lines if "runs only with -m" in line]
    assert len(hints) == 1 and "[WARNING]" in hints[0] and "training one job, model=resnet20" in hints[0]
    command = hints[0].split("The whole sweep: ")[1]
    assert command.startswith("resnet-train -m ") and "experiment=cifar_plain_vs_resnet" in command
    assert "model=resnet20" not in command  # it would narrow the sweep to one net
    assert "model.depth=8" in command


def test_the_argparse_tools_log_in_the_same_format(tmp_path):
    result = subprocess.run(
        [console_script("resnet-report"), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and LOG_LINE.match(errors[0]) and "[ERROR]" in errors[0], result.stderr


def test_help_is_the_projects_own_page():
    result = subprocess.run(
        [console_script("resnet-train"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    page = result.stdout
    assert "powered by Hydra" not in page and "He et al. 2016" in page
    groups = {line.split(":")[0]: line for line in page.splitlines() if re.match(r"^[a-z]+: ", line)}
    assert {"model", "data", "optim", "sched", "trainer", "experiment"} <= set(groups)
    assert "resnet56" in groups["model"] and "cifar_plain_vs_resnet" in groups["experiment"]
    for command in ("resnet-train model=", "resnet-train -m model=", "resnet-train -m experiment=",
                    "re-run the same command", "tensorboard --logdir outputs"):  # fmt: skip
        assert command in page
    assert "README" in page


@pytest.mark.parametrize("code", [75, 2])
def test_make_train_takes_exit_75_as_a_clean_stop_and_passes_failures_on(tmp_path, code):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    fake = venv / "bin" / "resnet-train"
    fake.write_text(f"#!/bin/sh\necho 'stopped; re-run the same command to resume'\nexit {code}\n")
    fake.chmod(0o755)
    root = Path(__file__).resolve().parents[1]
    make = ["make", "-C", str(root), "train", f"VENV={venv}"]
    result = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert "re-run the same command" in result.stdout
    if code == 75:
        assert result.returncode == 0 and "Error" not in result.stderr, result.stderr
    else:
        assert result.returncode != 0 and f"Error {code}" in result.stderr
