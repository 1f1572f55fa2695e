"""The paper's claims about depth, each with our numbers, the gap, its noise and a verdict.

Fig. 6 and Table 2 of He et al. 2016 make three claims about nets trained alike, and Table 6 gives numbers:
- plain nets: the deeper net has the higher training error (the degradation problem, Sec. 4.1/4.2);
- at equal depth the ResNet's training error is below its plain twin's;
- ResNets: the deeper net has the lower test error (Table 6, Fig. 6 right);
- each net beside the paper's number, in standard errors.

Noise: with two or more seeds per net, the standard error of the difference of the means over seeds,
sqrt(s1^2/n1 + s2^2/n2); a net with one seed contributes the binomial floor of its error instead,
p(1-p)/N over the N images the error counted, and the claim says "one seed: run-to-run spread unknown" (the
floor is only the sampling error of one run's test set or logging window; seeds differ by more). Verdict:
"reproduced" when the gap is beyond two sigma in the paper's direction, "reversed" beyond two sigma the other
way, else "not resolved at this length/seed count".

Everything here takes plain numbers (errors in percent), so it can be checked by hand and reused on a
published table.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

SIGMAS = 2.0  # a gap beyond this many standard errors is a verdict
REPRODUCED, REVERSED, UNRESOLVED = "reproduced", "reversed", "not resolved at this length/seed count"
ONE_SEED = "one seed: run-to-run spread unknown"


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
    def variance_of_mean(self) -> float | None:
        """The squared standard error of the mean (percent^2): over seeds with two or more, else the
        binomial floor of the one run; None with one seed and an unknown image count."""
        if self.n >= 2:
            return statistics.variance(self.values) / self.n
        if not self.images:
            return None
        p = self.mean / 100
        return 100**2 * p * (1 - p) / self.images


@dataclass(frozen=True)
class Comparison:
    gap: float  # percent points, positive in the paper's direction
    sigma: float | None  # its standard error; None when the noise is unknown
    one_seed: bool  # a side has one seed: sigma is the binomial floor only

    @property
    def verdict(self) -> str:
        return verdict(self.gap, self.sigma)


def verdict(gap: float, sigma: float | None) -> str:
    """The paper says `gap` > 0: beyond SIGMAS standard errors either way is a verdict."""
    if sigma is None:
        return UNRESOLVED
    if gap > SIGMAS * sigma:
        return REPRODUCED
    if gap < -SIGMAS * sigma:
        return REVERSED
    return UNRESOLVED


def compare(higher: Measurement, lower: Measurement) -> Comparison:
    """The paper says `higher`'s error is above `lower`'s."""
    variances = (higher.variance_of_mean, lower.variance_of_mean)
    sigma = None if None in variances else math.sqrt(sum(variances))
    return Comparison(higher.mean - lower.mean, sigma, one_seed=min(higher.n, lower.n) < 2)


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
    families = dict.fromkeys(net.family for net in nets)
    for family in families:
        members = sorted((n for n in nets if n.family == family), key=lambda n: (n.residual, n.depth))
        plain = [n for n in members if not n.residual]
        residual = [n for n in members if n.residual]
        for shallow, deep in combinations(plain, 2):
            if shallow.train and deep.train and shallow.depth < deep.depth:
                found.append(Claim(
                    f"plain nets: {deep.name} has a higher training error than {shallow.name}",
                    deep.train, shallow.train, family,
                ))  # fmt: skip
        for net in residual:
            twin = next((p for p in plain if p.depth == net.depth), None)
            if twin and twin.train and net.train:
                found.append(Claim(
                    f"equal depth: {net.name} has a lower training error than {twin.name}",
                    twin.train, net.train, family,
                ))  # fmt: skip
        for shallow, deep in combinations(residual, 2):
            alike = shallow.shortcut == deep.shortcut and shallow.depth < deep.depth
            if alike and shallow.test and deep.test:
                found.append(Claim(
                    f"ResNets: {deep.name} has a lower {deep.test_split} error than {shallow.name}",
                    shallow.test, deep.test, family,
                ))  # fmt: skip
    return found


def _sigma_cell(sigma: float | None, one_seed: bool) -> str:
    shown = "unknown (metrics.json has no image count)" if sigma is None else f"{sigma:.2f}"
    return f"{shown}; {ONE_SEED}" if one_seed else shown


def _ours(m: Measurement) -> str:
    return f"{m.mean:.2f}" + (f" (n={m.n})" if m.n > 1 else "")


def _ratio(value: float, sigma: float | None) -> str:
    return "" if not sigma else f"{value / sigma:+.1f}"


def to_markdown(nets: Sequence[Net]) -> str:
    """The claims section of a report: a table of claims with verdicts, then each net beside the paper."""
    lines = [
        "## The paper's claims",
        "",
        "Gap: the paper's higher error minus its lower one, in points (positive: the paper's direction). "
        "Sigma: the standard error of the difference of the means over seeds; for a net of one seed, the "
        "binomial floor sqrt(p(1-p)/N) over the N images its error counted. "
        f'Verdict: "{REPRODUCED}" beyond {SIGMAS:g} sigma in the paper\'s direction, "{REVERSED}" beyond '
        f'{SIGMAS:g} sigma the other way, else "{UNRESOLVED}".',
        "",
    ]
    found = claims(nets)
    if not found:
        lines.append("None of the paper's comparisons applies to these nets (they need two depths or a plain "
                     "net and its ResNet twin, trained alike).")  # fmt: skip
    else:
        lines += ["| claim | ours (%) | gap | sigma | gap / sigma | verdict |", "|---|---|---|---|---|---|"]
        for claim in found:
            c = claim.comparison
            family = f" [{claim.family}]" if claim.family else ""
            lines.append(
                f"| {claim.text}{family} | {_ours(claim.higher)} vs "
                f"{_ours(claim.lower)} | {c.gap:+.2f} | {_sigma_cell(c.sigma, c.one_seed)} | "
                f"{_ratio(c.gap, c.sigma)} | {c.verdict} |"
            )
    compared = [net for net in nets if net.paper is not None and net.test is not None]
    if compared:
        lines += [
            "",
            "Beside the paper (its nets trained 64,000 iterations on CIFAR-10, 600,000 on ImageNet); "
            "sigma is the standard error of our mean (one seed: the binomial floor):",
            "",
            "| net | iterations | ours (%) | paper (%) | ours - paper | sigma | (ours - paper) / sigma |",
            "|---|---|---|---|---|---|---|",
        ]
        for net in compared:
            variance = net.test.variance_of_mean
            sigma = None if variance is None else math.sqrt(variance)
            difference = net.test.mean - net.paper
            iterations = "" if net.iterations is None else f"{net.iterations:,}"
            lines.append(
                f"| {net.name} | {iterations} | {_ours(net.test)} | {net.paper:.2f} ({net.paper_source}) | "
                f"{difference:+.2f} | "
                f"{_sigma_cell(sigma, net.test.n < 2)} | {_ratio(difference, sigma)} |"
            )
    return "\n".join(lines) + "\n"
