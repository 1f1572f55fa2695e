"""The built wheel carries the configs: installed in a fresh virtual environment, the CLI composes them."""

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installed_in_a_fresh_venv_finds_its_configs(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("resnet_train-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True
    )
    # The dependencies (torch, hydra, ...) come from this environment's site-packages, as plain path entries:
    # its .pth files (the editable install of this checkout among them) are not processed there.
    fresh_site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )  # noqa: E501
    deps = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    (fresh_site / "deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.check_output(
        [str(python), "-c", "import resnet_train; print(resnet_train.__file__)"], cwd=elsewhere, text=True
    )
    assert str(venv) in where  # the wheel's copy, not this checkout
    result = subprocess.run(
        [str(venv / "bin" / "resnet-train"), "--cfg", "job", "model=resnet56"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "depth: 56" in result.stdout and "milestones:" in result.stdout
    info = subprocess.run(
        [str(venv / "bin" / "resnet-info"), "resnet20", "--json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert info.returncode == 0 and '"params": 269722' in info.stdout, info.stderr
