"""The paper's claims about depth, each with our numbers, the gap, its 95% interval and a verdict.

Fig. 6 and Table 2 of He et al. 2016 make three claims about nets trained alike, and Table 6 gives numbers:
- plain nets: the deeper net has the higher training error (the degradation problem, Sec. 4.1/4.2);
- at equal depth the ResNet's training error is below its plain twin's;
- ResNets: the deeper net has the lower test error (Table 6, Fig. 6 right);
- each net beside the paper's number.

With two or more seeds per net, Welch's t-test (unequal variances, scipy's `ttest_ind`) gives the gap's 95%
confidence interval, df and p: "reproduced" when the interval lies wholly on the paper's side of zero,
"reversed" when wholly on the other, otherwise "not resolved", with the seeds per net that would resolve a gap
of the observed size at the observed spread (95%, power 0.8, from the noncentral t). With one seed on a side
there is no test and no verdict: the gap's direction and its size in sampling floors (the binomial noise of
the images the errors counted, smaller than the spread between seeds). Inputs are plain errors in percent.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Sequence

from scipy import stats

LEVEL, POWER = 0.95, 0.8
MOST_SEEDS = 100  # "seeds needed" beyond this many is shown as "more than 100"
REPRODUCED, REVERSED, UNRESOLVED = "reproduced", "reversed", "not resolved"
ONE_SEED = "one seed: run-to-run spread unknown; run 3 or more seeds for a verdict"


@dataclass(frozen=True)
class Measurement:
    """One net's error in percent: one value per seed, and how many images each value counted."""

    values: tuple[float, ...]
    images: int | None = None  # a single run's denominator: the test set, or the last logging window

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def variance(self) -> float | None:
        """The sample variance over seeds (percent^2); None with one seed."""
        return statistics.variance(self.values) if self.n >= 2 else None

    @property
    def floor(self) -> float | None:
        """The binomial sampling variance of the mean (percent^2): p(1-p)/N over the N images each of the n
        values counted, divided by n; None with an unknown image count."""
        if not self.images:
            return None
        p = self.mean / 100
        return 100**2 * p * (1 - p) / (self.images * self.n)


@dataclass(frozen=True)
class Comparison:
    """Two nets' errors, the paper saying the first's is the higher."""

    gap: float  # percent points, positive in the paper's direction
    interval: tuple[float, float] | None = None  # the gap's 95% confidence interval (Welch)
    df: float | None = None
    p: float | None = None
    seeds_needed: int | None = None  # per net, for a gap not resolved; None where it does not apply
    floors: float | None = None  # with one seed: the gap over the sampling floor's standard error
    one_seed: bool = False

    @property
    def verdict(self) -> str:
        if self.interval is None:
            return UNRESOLVED
        low, high = self.interval
        return REPRODUCED if low > 0 else REVERSED if high < 0 else UNRESOLVED


def seeds_needed(gap: float, variances: tuple[float, float]) -> int | None:
    """The seeds per net with which Welch's test at LEVEL finds a true gap of `gap` at these per-net
    variances with probability POWER (noncentral t); None beyond MOST_SEEDS."""
    total, squares = sum(variances), sum(v * v for v in variances)
    for n in range(2, MOST_SEEDS + 1):
        df = (n - 1) * total**2 / squares
        critical = stats.t.ppf((1 + LEVEL) / 2, df)
        shift = abs(gap) / math.sqrt(total / n)
        if stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) >= POWER:
            return n
    return None


def compare(higher: Measurement, lower: Measurement) -> Comparison:
    """The paper says `higher`'s error is above `lower`'s: Welch's test with two or more seeds a side, the
    gap in sampling floors with one."""
    gap = higher.mean - lower.mean
    if min(higher.n, lower.n) < 2:
        floors = (higher.floor, lower.floor)
        size = None if None in floors else gap / math.sqrt(sum(floors))
        return Comparison(gap, floors=size, one_seed=True)
    variances = (higher.variance, lower.variance)
    if not any(variances):
        return Comparison(gap)  # the seeds agree exactly: no spread to test against
    with warnings.catch_warnings():  # scipy warns of "catastrophic cancellation" for seeds that agree exactly
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(higher.values, lower.values, equal_var=False)
    ci = test.confidence_interval(LEVEL)
    found = Comparison(gap, (float(ci.low), float(ci.high)), float(test.df), float(test.pvalue))
    return found if found.verdict != UNRESOLVED else replace(found, seeds_needed=seeds_needed(gap, variances))


@dataclass(frozen=True)
class Net:
    """One net's numbers, as the claims need them. Nets of one `family` were trained alike apart from their
    depth, plain or residual, and shortcut option."""

    name: str
    residual: bool
    depth: int
    shortcut: str | None = None
    family: str = ""  # what sets this family apart from the others in one report ("" when there is one)
    train: Measurement | None = None
    test: Measurement | None = None
    test_split: str = "test"  # "val" for a run without a test set (ImageNet)
    paper: float | None = None  # the paper's test error in percent
    paper_source: str = ""
    iterations: int | None = None


@dataclass(frozen=True)
class Claim:
    text: str
    higher: Measurement
    lower: Measurement
    family: str = ""

    @property
    def comparison(self) -> Comparison:
        return compare(self.higher, self.lower)


def claims(nets: Sequence[Net]) -> list[Claim]:
    """Every comparison of the paper's three claims that `nets` allow, family by family."""
    found = []
    for family in dict.fromkeys(net.family for net in nets):
        members = sorted((n for n in nets if n.family == family), key=lambda n: (n.residual, n.depth))
        plain = [n for n in members if not n.residual]
        residual = [n for n in members if n.residual]
        for shallow, deep in combinations(plain, 2):
            if shallow.train and deep.train and shallow.depth < deep.depth:
                text = f"plain nets: {deep.name} has a higher training error than {shallow.name}"
                found.append(Claim(text, deep.train, shallow.train, family))
        for net in residual:
            twin = next((p for p in plain if p.depth == net.depth), None)
            if twin and twin.train and net.train:
                text = f"equal depth: {net.name} has a lower training error than {twin.name}"
                found.append(Claim(text, twin.train, net.train, family))
        for shallow, deep in combinations(residual, 2):
            alike = shallow.shortcut == deep.shortcut and shallow.depth < deep.depth
            if alike and shallow.test and deep.test:
                text = f"ResNets: {deep.name} has a lower {deep.test_split} error than {shallow.name}"
                found.append(Claim(text, shallow.test, deep.test, family))
    return found


def not_judged(nets: Sequence[Net]) -> list[str]:
    """The claims `nets` cannot judge, one line each with the reason: a net without the partner a claim
    compares it with (trained alike: same family), or without the error the claim needs."""
    lines = []
    for net in nets:
        family = [n for n in nets if n.family == net.family and n is not net]
        where = f" [{net.family}]" if net.family else ""
        if net.residual:
            if not any(not n.residual and n.depth == net.depth for n in family):
                lines.append(f"equal depth: {net.name}{where} has no plain-{net.depth} trained alike")
            elif net.train is None:
                lines.append(f"equal depth: {net.name}{where} has no training error")
            if not any(n.residual and n.shortcut == net.shortcut and n.depth != net.depth for n in family):
                other = "ResNet of another depth with its shortcut option"
                lines.append(f"ResNets: {net.name}{where} has no {other} trained alike")
        elif not any(not n.residual and n.depth != net.depth for n in family):
            lines.append(f"plain nets: {net.name}{where} has no plain net of another depth trained alike")
    return lines


def _ours(m: Measurement) -> str:
    return f"{m.mean:.2f}" + (f" (n={m.n})" if m.n > 1 else "")


def _interval(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"


def _verdict(c: Comparison) -> str:
    if c.one_seed:  # no verdict: the gap's direction and its size in sampling floors
        side = ("the paper's direction" if c.gap > 0 else
                "against the paper's direction" if c.gap < 0 else "no gap")  # fmt: skip
        size = "" if c.floors is None else f", {abs(c.floors):.1f} sampling floors"
        return f"no verdict ({side}{size}); {ONE_SEED}"
    if c.interval is None:
        return f"{UNRESOLVED} (the seeds agree exactly: no spread to test)"
    return c.verdict


def to_markdown(nets: Sequence[Net]) -> str:
    """The claims section of a report: a table of claims with verdicts, then each net beside the paper."""
    lines = [
        "## The paper's claims",
        "",
        "Gap: the paper's higher error minus its lower one, in points (positive: the paper's direction), "
        "with its 95% interval, degrees of freedom and p from Welch's t-test over the seeds. "
        f'Verdict: "{REPRODUCED}" when the interval lies wholly above zero, "{REVERSED}" wholly below, else '
        f'"{UNRESOLVED}", with the seeds per net that would resolve a gap of this size at this spread (95%, '
        f"power {POWER:g}). With one seed on a side there is no test: the gap's size is given in sampling "
        "floors (the binomial noise sqrt(p(1-p)/N) of the N images the errors counted).",
        "",
    ]
    found = claims(nets)
    if not found:
        lines.append("None of the paper's comparisons applies to these nets (they need two depths or a plain "
                     "net and its ResNet twin, trained alike).")  # fmt: skip
    else:
        lines += [
            "| claim | ours (%) | gap | 95% interval | df | p | verdict | seeds needed |",
            "|---|---|---|---|---|---|---|---|",
        ]
        needed = []
        for claim in found:
            c = claim.comparison
            needed.append(c.seeds_needed or 0)
            family = f" [{claim.family}]" if claim.family else ""
            df = "" if c.df is None else f"{c.df:.2f}"
            p = "" if c.p is None else f"{c.p:.3g}"
            more = f"more than {MOST_SEEDS}" if c.seeds_needed is None else str(c.seeds_needed)
            more = "" if c.one_seed or c.verdict != UNRESOLVED or c.interval is None else more
            lines.append(
                f"| {claim.text}{family} | {_ours(claim.higher)} vs {_ours(claim.lower)} | {c.gap:+.2f} | "
                f"{_interval(c.interval)} | {df} | {p} | {_verdict(c)} | {more} |"
            )
        most = max(needed)
        if most > 1:
            seeds = ",".join(map(str, range(most)))
            lines += ["", f"To price {most} seeds a net: `resnet-plan` with the sweep's overrides and "
                      f"`trainer.seed={seeds}` (`make fig6-cpu SEEDS={most}` for Fig. 6)."]  # fmt: skip
    skipped = not_judged(nets)
    if skipped:
        lines += ["", "Not judged: " + "; ".join(skipped) + "."]
    compared = [net for net in nets if net.paper is not None and net.test is not None]
    if compared:
        lines += [
            "",
            "Beside the paper (its nets trained 64,000 iterations on CIFAR-10, 600,000 on ImageNet); the "
            "interval is our mean's 95% t-interval minus the paper's number (one seed: none, and the "
            "difference in sampling floors):",
            "",
            "| net | iterations | ours (%) | paper (%) | ours - paper | 95% interval |",
            "|---|---|---|---|---|---|",
        ]
        for net in compared:
            difference = net.test.mean - net.paper
            if net.test.n >= 2:
                shown = ""  # seeds that agree exactly give no interval
                if net.test.variance:
                    ci = stats.ttest_1samp(net.test.values, net.paper).confidence_interval(LEVEL)
                    shown = _interval((ci.low - net.paper, ci.high - net.paper))
            else:
                floor = net.test.floor
                shown = ("" if floor is None else f"{difference / math.sqrt(floor):+.1f} floors; ") + ONE_SEED
            iterations = "" if net.iterations is None else f"{net.iterations:,}"
            lines.append(
                f"| {net.name} | {iterations} | {_ours(net.test)} | {net.paper:.2f} ({net.paper_source}) | "
                f"{difference:+.2f} | {shown} |"
            )
    return "\n".join(lines) + "\n"
