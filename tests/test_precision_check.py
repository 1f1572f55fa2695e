"""scripts/precision_check.py: its verdict rule and table on made-up numbers, and one tiny run end to end."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "precision_check.py"
spec = importlib.util.spec_from_file_location("precision_check", SCRIPT)
check = sys.modules["precision_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

WINDOW = 25 * 128  # images behind one logged training error, as in the default check


def curves(**runs):
    """fp32_0=(a, b) -> {("fp32", 0): {200: a, 300: b}}, errors given in percent."""
    out = {}
    for key, values in runs.items():
        precision, seed = key.split("_")
        out[(precision, int(seed))] = None if values is None else {200: values[0] / 100, 300: values[1] / 100}
    return out


# The 56-layer nets at iterations 200 / 300 as first measured (fp32 and bf16 autocast, seeds 0 and 1).
PLAIN56 = curves(fp32_0=(85.0, 80.2), fp32_1=(81.1, 79.9), bf16_0=(89.0, 89.3), bf16_1=(79.3, 79.0))
RESNET56 = curves(fp32_0=(74.8, 68.9), fp32_1=(75.7, 70.5), bf16_0=(85.8, 80.7), bf16_1=(89.2, 85.0))


def test_a_candidate_inside_the_fp32_range_is_within_seed_spread():
    errors = curves(fp32_0=(85.0, 80.2), fp32_1=(81.1, 79.9), bf16_0=(83.0, 80.0), bf16_1=(85.0, 80.2))
    result = check.verdict("plain56", errors, "bf16", [200, 300], WINDOW)
    assert result.within and result.words == "within seed spread" and result.reasons == []


def test_the_range_is_widened_by_the_fp32_spread_on_both_sides():
    # fp32 at 200: 81.1..85.0 (spread 3.9), so 77.2..88.9 passes; at 300: 79.9..80.2, widened by the
    # binomial floor 2 * sqrt(0.8 * 0.2 / 3200) = 1.41 points (larger than the 0.3 spread): 78.5..81.6.
    inside = curves(fp32_0=(85.0, 80.2), fp32_1=(81.1, 79.9), bf16_0=(88.8, 81.5), bf16_1=(77.3, 78.6))
    assert check.verdict("plain56", inside, "bf16", [200, 300], WINDOW).within
    outside = curves(fp32_0=(85.0, 80.2), fp32_1=(81.1, 79.9), bf16_0=(89.0, 80.0), bf16_1=(83.0, 80.0))
    result = check.verdict("plain56", outside, "bf16", [200, 300], WINDOW)
    assert not result.within and result.reasons == ["bf16 seed 0 at 200: 89.00 outside [77.20, 88.90]"]


def test_the_first_measurement_of_bf16_is_not_within_seed_spread():
    plain = check.verdict("plain56", PLAIN56, "bf16", [200, 300], WINDOW)
    assert not plain.within and plain.words == "not"
    # Seed 1 (79.3 / 79.0) lies inside fp32's range widened by its spread (200) or the binomial floor (300).
    assert [reason.split(":")[0] for reason in plain.reasons] == ["bf16 seed 0 at 200", "bf16 seed 0 at 300"]
    resnet = check.verdict("resnet56", RESNET56, "bf16", [200, 300], WINDOW)
    assert not resnet.within and len(resnet.reasons) == 4  # both seeds, both points


def test_equal_fp32_seeds_leave_only_the_sampling_noise_of_one_logged_value():
    se = check.binomial_se(0.5, WINDOW)  # 0.88 points at 50% on 3,200 images
    assert se == pytest.approx((0.25 / 3200) ** 0.5)
    near = {("fp32", 0): {10: 0.5}, ("fp32", 1): {10: 0.5}, ("bf16", 0): {10: 0.5 + 1.9 * se}}
    far = {**near, ("bf16", 0): {10: 0.5 - 2.1 * se}}
    assert check.verdict("n", near, "bf16", [10], WINDOW).within
    assert not check.verdict("n", far, "bf16", [10], WINDOW).within


def test_a_failed_run_gives_no_within_verdict():
    failed_candidate = check.verdict(
        "n", curves(fp32_0=(80, 80), fp32_1=(80, 80), bf16_0=None), "bf16", [200, 300], WINDOW
    )
    assert not failed_candidate.within and failed_candidate.reasons == ["bf16 seed 0 failed"]
    failed_fp32 = check.verdict(
        "n", curves(fp32_0=(80, 80), fp32_1=None, bf16_0=(80, 80)), "bf16", [200, 300], WINDOW
    )
    assert not failed_fp32.within and "two finished fp32 runs" in failed_fp32.reasons[0]


def test_the_table_has_a_row_per_net_and_a_column_per_precision_and_seed():
    runs = {("plain56", p, s): c for (p, s), c in PLAIN56.items()}
    runs.update({("resnet56", p, s): c for (p, s), c in RESNET56.items()})
    runs[("resnet56", "bf16", 1)] = None
    verdicts = {"plain56": check.Verdict("plain56", False), "resnet56": check.Verdict("resnet56", True)}
    text = check.table(["plain56", "resnet56"], runs, ["fp32", "bf16"], [0, 1], [200, 300], verdicts)
    assert text.splitlines() == [
        "| training error (%) at 200 / 300 | fp32 seed 0 | fp32 seed 1 | bf16 seed 0 | bf16 seed 1 "
        "| verdict |",
        "|---|---|---|---|---|---|",
        "| plain56 | 85.0 / 80.2 | 81.1 / 79.9 | 89.0 / 89.3 | 79.3 / 79.0 | not |",
        "| resnet56 | 74.8 / 68.9 | 75.7 / 70.5 | 85.8 / 80.7 | failed | within seed spread |",
    ]


@pytest.mark.parametrize(
    "iters, log_every, points, expected",
    [
        (300, 25, None, [200, 300]),
        (200, 25, None, [125, 200]),
        (4, 2, None, [2, 4]),
        (300, 25, [100, 300], [100, 300]),
    ],
)
def test_the_reported_points_are_logged_iterations(iters, log_every, points, expected):
    assert check.report_points(iters, log_every, points) == expected


def test_points_that_are_not_logged_and_a_single_seed_are_refused(capsys):
    with pytest.raises(SystemExit, match="--points \\[110\\] are not logged iterations"):
        check.report_points(300, 25, [110, 300])
    with pytest.raises(SystemExit) as refused:
        check.parse_args(["--data", "synthetic", "--seeds", "0"])
    assert refused.value.code == 2 and "--seeds needs two seeds or more" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_check_trains_every_run_in_its_precision_and_writes_the_table_and_json(tmp_path, capsys):
    out = tmp_path / "check.json"
    result = check.main(
        [
            "--data",
            "synthetic",
            "--depth",
            "8",
            "--iters",
            "4",
            "--log-every",
            "2",
            "--jobs",
            "1",
            "--workdir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "data.image_size=16",
            "data.train_size=128",
            "data.test_size=16",
        ]
    )
    assert json.loads(out.read_text()) == result  # JSON-ready: the points are strings
    assert set(result["train_error"]) == {
        f"{net}/{precision}/seed{seed}"
        for net in ("plain8", "resnet8")
        for precision in ("fp32", "bf16")
        for seed in (0, 1)
    }
    assert all(set(errors) == {"2", "4"} for errors in result["train_error"].values())
    for name in result["train_error"]:
        net, precision, seed = name.split("/")
        metrics = json.loads((tmp_path / "runs" / f"{net}-{precision}-{seed}" / "metrics.json").read_text())
        assert (metrics["precision"], f"seed{metrics['seed']}", metrics["iterations"]) == (precision, seed, 4)
    printed = capsys.readouterr().out
    assert (
        "| training error (%) at 2 / 4 | fp32 seed 0 | fp32 seed 1 | bf16 seed 0 | bf16 seed 1 | verdict |"
        in printed
    )
    for net in ("plain8", "resnet8"):
        words = "within seed spread" if result["verdict"][net]["within_seed_spread"] else "not"
        assert f"{net}: {words}" in printed
