"""The verdict on the paper's claims (analysis/claims.py), on made-up numbers checked by hand."""

from __future__ import annotations

import math

import pytest

from resnet_train.analysis.claims import (
    ONE_SEED,
    REPRODUCED,
    REVERSED,
    UNRESOLVED,
    Measurement,
    Net,
    claims,
    compare,
    to_markdown,
    verdict,
)


def test_a_clear_gap_over_seeds_is_reproduced():
    # plain-56 above plain-20 by 10 points; each net's two seeds 1 point apart: s^2 = 0.5 per net.
    c = compare(Measurement((30.0, 31.0)), Measurement((20.0, 21.0)))
    assert c.gap == pytest.approx(10.0)
    assert c.sigma == pytest.approx(math.sqrt(0.5 / 2 + 0.5 / 2))  # SE of the difference of the means
    assert not c.one_seed and c.verdict == REPRODUCED


def test_a_clear_gap_the_other_way_is_reversed():
    c = compare(Measurement((20.0, 21.0, 22.0)), Measurement((30.0, 31.0, 29.0)))
    assert c.gap == pytest.approx(-9.0)
    assert c.sigma == pytest.approx(math.sqrt(1.0 / 3 + 1.0 / 3))
    assert c.verdict == REVERSED


def test_a_gap_inside_the_noise_is_not_resolved():
    # means 33 and 31: a 2-point gap, but s^2 = 18 and 8 over two seeds each: sigma = sqrt(9 + 4) = 3.6.
    c = compare(Measurement((30.0, 36.0)), Measurement((29.0, 33.0)))
    assert c.gap == pytest.approx(2.0) and c.sigma == pytest.approx(math.sqrt(13.0))
    assert c.verdict == UNRESOLVED


def test_exactly_two_sigma_is_not_yet_a_verdict():
    assert verdict(2.0, 1.0) == UNRESOLVED and verdict(2.01, 1.0) == REPRODUCED
    assert verdict(-2.0, 1.0) == UNRESOLVED and verdict(-2.01, 1.0) == REVERSED
    assert verdict(50.0, None) == UNRESOLVED  # unknown noise never gives a verdict


def test_one_seed_uses_the_binomial_floor_of_the_images_counted():
    # The README's CPU-scale Fig. 6: training error over 25 x 128 = 3,200 images of the last window.
    deep, shallow = Measurement((77.03,), 3200), Measurement((44.00,), 3200)
    c = compare(deep, shallow)
    floor = 100 * math.sqrt(0.7703 * 0.2297 / 3200 + 0.44 * 0.56 / 3200)
    assert c.sigma == pytest.approx(floor) and c.one_seed
    assert c.verdict == REPRODUCED
    # Test errors over 10,000 images, 0.3 points apart: inside the floor of about 0.67 points.
    c = compare(Measurement((56.37,), 10000), Measurement((56.07,), 10000))
    assert c.sigma == pytest.approx(100 * math.sqrt(2 * 0.5637 * 0.4363 / 10000), rel=1e-2)
    assert c.verdict == UNRESOLVED
    # One seed and no image count: the noise is unknown, so is the verdict.
    assert compare(Measurement((77.0,)), Measurement((44.0,))).sigma is None


def test_a_net_of_one_seed_beside_one_of_several_adds_its_floor():
    c = compare(Measurement((30.0, 31.0)), Measurement((20.0,), 10000))
    assert c.sigma == pytest.approx(math.sqrt(0.5 / 2 + 100**2 * 0.2 * 0.8 / 10000)) and c.one_seed


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


def test_the_claims_section_gives_numbers_gap_noise_verdict_and_the_paper():
    text = to_markdown(NETS)
    row = next(line for line in text.splitlines() if "ResNet-56 has a lower test error" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    sigma = 100 * math.sqrt(0.356 * 0.644 / 10000 + 0.564 * 0.436 / 10000)
    assert cells[1:] == [
        "35.60 vs 56.40", "-20.80", f"{sigma:.2f}; {ONE_SEED}", f"{-20.8 / sigma:+.1f}", REVERSED,
    ]  # fmt: skip
    paper = next(line for line in text.splitlines() if line.startswith("| ResNet-20 | 800 |"))
    floor = 100 * math.sqrt(0.356 * 0.644 / 10000)
    assert f"8.75 (Table 6) | +26.85 | {floor:.2f}; {ONE_SEED} | {26.85 / floor:+.1f} |" in paper
    assert to_markdown(NETS[:1]).count("None of the paper's comparisons applies") == 1
