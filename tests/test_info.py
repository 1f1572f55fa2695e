"""`resnet-info`: the numbers it prints are the paper's, and a wrong name is refused cleanly."""

from __future__ import annotations

import json

import pytest
from paper import CIFAR_PARAMS, RESNET50_PARAMS

from resnet_train.cli.info import main


def run_json(capsys, *argv: str) -> dict[str, dict]:
    assert main([*argv, "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_json_numbers(capsys):
    rows = run_json(capsys, "resnet20", "plain20", "resnet50")
    assert rows["resnet20"] == {
        "name": "resnet20", "family": "cifar", "depth": 20, "shortcut": "A",
        "params": CIFAR_PARAMS[20], "macs": rows["resnet20"]["macs"], "input_size": 32,
    }  # fmt: skip
    assert rows["resnet20"]["macs"] == pytest.approx(41e6, rel=0.02)  # 16/32/64 filters at 32/16/8 px
    assert rows["plain20"]["params"] == CIFAR_PARAMS[20] and rows["plain20"]["shortcut"] == "none"
    assert rows["resnet50"]["input_size"] == 224 and rows["resnet50"]["shortcut"] == "B"
    assert rows["resnet50"]["params"] == RESNET50_PARAMS
    assert rows["resnet50"]["macs"] == pytest.approx(3.8e9, rel=0.02)  # Table 1


def test_input_size_and_num_classes(capsys):
    rows = run_json(capsys, "resnet18", "--input-size", "32", "--num-classes", "10")
    assert rows["resnet18"]["input_size"] == 32
    # 32 px: the CIFAR-style stem (3x3/1, no pool), so the four stages see 32/16/8/4 px.
    assert rows["resnet18"]["macs"] == pytest.approx(0.55e9, rel=0.01)
    # ResNet-18 with option A (11,515,688), its 7x7 stem conv (9,408) swapped for a 3x3 (1,728) and its
    # 1000-way fc (513,000) for a 10-way one (5,130).
    assert rows["resnet18"]["params"] == 11_515_688 - 9_408 + 1_728 - 513_000 + 5_130


def test_input_size_applies_to_the_imagenet_nets_only(capsys):
    # One table mixing the families: CIFAR nets stay at their 32 px unless asked with --cifar-input-size.
    rows = run_json(capsys, "resnet20", "resnet50", "--input-size", "320")
    assert rows["resnet20"]["input_size"] == 32 and rows["resnet20"]["macs"] == pytest.approx(41e6, rel=0.02)
    assert rows["resnet50"]["input_size"] == 320
    rows = run_json(capsys, "resnet20", "resnet50", "--cifar-input-size", "64")
    assert rows["resnet20"]["input_size"] == 64 and rows["resnet50"]["input_size"] == 224
    assert rows["resnet20"]["macs"] == pytest.approx(4 * 41e6, rel=0.02)


def test_table(capsys):
    assert main(["resnet56", "plain56"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "depth", "shortcut", "params", "MACs", "input"]
    assert lines[1].split()[:5] == ["resnet56", "cifar", "56", "A", "853,018"]
    assert lines[2].split()[3] == "none"


def test_unknown_name_exits_2_with_the_list(capsys):
    assert main(["resnet21"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert len(message.splitlines()) == 1
    assert "unknown model resnet21" in message and "resnet20" in message and "plain56" in message
