"""The verdict on the paper's claims (analysis/claims.py), on made-up numbers checked by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from resnet_train.analysis.claims import (
    ONE_SEED,
    REPRODUCED,
    REVERSED,
    UNRESOLVED,
    Measurement,
    Net,
    claims,
    compare,
    seeds_needed,
    to_markdown,
)


def test_the_worked_example_of_two_seeds_a_side_is_not_resolved():
    # ResNet-20's 8.3 and 8.9 against ResNet-56's 7.1 and 7.4: the old two-sigma rule said "reproduced".
    c = compare(Measurement((8.3, 8.9)), Measurement((7.1, 7.4)))
    welch = stats.ttest_ind([8.3, 8.9], [7.1, 7.4], equal_var=False)
    assert c.df == pytest.approx(1.47, abs=0.01) and c.p == pytest.approx(0.092, abs=0.001)
    assert c.df == pytest.approx(welch.df) and c.p == pytest.approx(welch.pvalue)
    assert c.interval == pytest.approx((-0.73, 3.43), abs=0.01)
    assert c.verdict == UNRESOLVED and not c.one_seed


def test_five_seeds_a_side_well_apart_are_reproduced_and_the_other_way_reversed():
    low, high = (6.9, 6.95, 7.0, 7.05, 7.1), (8.6, 8.65, 8.7, 8.75, 8.8)
    c = compare(Measurement(high), Measurement(low))
    assert c.interval[0] > 0 and c.verdict == REPRODUCED and c.seeds_needed is None
    assert compare(Measurement(low), Measurement(high)).verdict == REVERSED


def test_seeds_needed_is_the_least_count_with_power_0_8_by_the_noncentral_t():
    c = compare(Measurement((8.3, 8.9)), Measurement((7.1, 7.4)))
    variances = (0.18, 0.045)

    def power(n):  # two-sided Welch at 95%, the observed gap and variances, n seeds a net
        total = sum(variances)
        df = (n - 1) * total**2 / sum(v * v for v in variances)
        shift, critical = 1.35 / math.sqrt(total / n), stats.t.ppf(0.975, df)
        return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)

    assert c.seeds_needed == seeds_needed(1.35, variances) >= 3
    assert power(c.seeds_needed) >= 0.8 > power(c.seeds_needed - 1)
    assert seeds_needed(0.0, variances) is None  # no gap: no count of seeds resolves it


def test_one_seed_a_side_is_no_verdict_but_a_direction_in_sampling_floors():
    c = compare(Measurement((56.4,), 10000), Measurement((35.6,), 10000))
    floor = 100 * math.sqrt(0.564 * 0.436 / 10000 + 0.356 * 0.644 / 10000)
    assert c.one_seed and c.interval is None and c.p is None and c.verdict != REPRODUCED
    assert c.floors == pytest.approx(20.8 / floor)
    # One seed beside several is still one seed; an unknown image count leaves the size unknown.
    assert compare(Measurement((30.0, 31.0)), Measurement((20.0,))).one_seed
    assert compare(Measurement((77.0,)), Measurement((44.0,))).floors is None


def test_seeds_that_agree_exactly_give_no_verdict():
    assert compare(Measurement((8.3, 8.3)), Measurement((7.1, 7.1))).verdict == UNRESOLVED


def _net(name, residual, depth, train, test, **kwargs):
    return Net(name, residual, depth, train=Measurement(train, 3200), test=Measurement(test, 10000), **kwargs)


NETS = [
    _net("plain-20", False, 20, (44.0,), (41.6,)),
    _net("plain-32", False, 32, (60.0,), (58.0,)),
    _net("plain-56", False, 56, (77.0,), (77.0,)),
    _net("ResNet-20", True, 20, (37.7,), (35.6,), shortcut="A", paper=8.75, paper_source="Table 6",
         iterations=800),
    _net("ResNet-56", True, 56, (56.5,), (56.4,), shortcut="A", paper=6.97, paper_source="Table 6",
         iterations=800),
    _net("ResNet-56 B", True, 56, (50.0,), (50.0,), shortcut="B"),
]  # fmt: skip


def test_every_claim_the_nets_allow_and_no_other():
    texts = [c.text for c in claims(NETS)]
    assert texts == [
        "plain nets: plain-32 has a higher training error than plain-20",
        "plain nets: plain-56 has a higher training error than plain-20",
        "plain nets: plain-56 has a higher training error than plain-32",
        "equal depth: ResNet-20 has a lower training error than plain-20",
        "equal depth: ResNet-56 has a lower training error than plain-56",
        "equal depth: ResNet-56 B has a lower training error than plain-56",
        "ResNets: ResNet-56 has a lower test error than ResNet-20",  # not against ResNet-56 B: option B
    ]
    # Nets of two families (another lr, say) are never compared across them.
    other = [Net("plain-8", False, 8, family="optim.lr=0.05", train=Measurement((1.0,), 100))]
    assert len(claims([*NETS, *other])) == len(texts)


def test_the_claims_section_gives_numbers_gap_interval_df_p_and_verdict():
    seeded = [
        Net("ResNet-20", True, 20, shortcut="A", test=Measurement((8.3, 8.9), 10000)),
        Net("ResNet-56", True, 56, shortcut="A", test=Measurement((7.1, 7.4), 10000)),
    ]
    row = next(line for line in to_markdown(seeded).splitlines() if "lower test error" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["8.60 (n=2) vs 7.25 (n=2)", "+1.35", "[-0.73, +3.43]"]
    assert cells[4:] == ["1.47", "0.0917", UNRESOLVED, "3"]
    assert "`trainer.seed=0,1,2`" in to_markdown(seeded)

    text = to_markdown(NETS)
    row = next(line for line in text.splitlines() if "ResNet-56 has a lower test error" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    floor = 100 * math.sqrt(0.356 * 0.644 / 10000 + 0.564 * 0.436 / 10000)
    assert cells[1:3] == ["35.60 vs 56.40", "-20.80"] and cells[3:6] == ["", "", ""]
    against = f"against the paper's direction, {20.8 / floor:.1f} sampling floors"
    assert cells[6] == f"no verdict ({against}); {ONE_SEED}"
    table = text.split("| claim |")[1]
    assert f"| {REPRODUCED} |" not in table and f"| {REVERSED} |" not in table  # every net has one seed
    paper = next(line for line in text.splitlines() if line.startswith("| ResNet-20 | 800 |"))
    floor = 100 * math.sqrt(0.356 * 0.644 / 10000)
    assert f"8.75 (Table 6) | +26.85 | {26.85 / floor:+.1f} floors; {ONE_SEED} |" in paper
    assert to_markdown(NETS[:1]).count("None of the paper's comparisons applies") == 1
    # What could not be judged, and why: ResNet-56 B has no other option-B depth; ResNet-14, no plain twin.
    lone = Net("ResNet-14", True, 14, shortcut="A", train=Measurement((30.0,)), test=Measurement((30.0,)))
    skipped = to_markdown([*NETS, lone]).split("Not judged: ")[1].splitlines()[0]
    assert skipped == (
        "ResNets: ResNet-56 B has no ResNet of another depth with its shortcut option trained alike; "
        "equal depth: ResNet-14 has no plain-14 trained alike."
    )
