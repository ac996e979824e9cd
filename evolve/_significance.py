"""Does one candidate beat another beyond noise? A paired comparison of per-example scores.

Two candidates scored on the same split are compared example by example, matched by
example id; only examples both were scored on count (``examples``; ``unmatched`` says
how many were scored for only one of them). Each common example is a win, a loss or a
tie for the first candidate. The p-value is the exact one-sided sign test: the chance,
if neither candidate were better, that the first wins at least ``won`` of the
``won + lost`` untied examples (a fair coin per untied example; ties carry no
information and are left out). For right/wrong scores (0 or 1) this is the exact
McNemar test. It ignores how much an example was won by, so when some score lies
strictly between 0 and 1 a paired bootstrap interval of the mean difference is given
as well (deterministic: a fixed random seed); the verdict stays the sign test's.

With 30 validation examples, 5 won and 0 lost is p = 0.031 (beyond noise); 2 won and
0 lost, a gain of 0.067, is p = 0.25 (within noise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from archive import Candidate, ExampleScore

#: Significance level: a sign-test p-value below it is "beyond noise". At 0.05 one run
#: in twenty whose best is no better than the seed is still reported as beyond noise.
ALPHA = 0.05
#: Confidence of the bootstrap interval, resamples drawn, and their fixed seed.
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0

BEYOND_NOISE = "beyond noise"
WITHIN_NOISE = "within noise"
NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class Comparison:
    """The first candidate (``a``) against the second (``b``) on one split."""

    split: str
    examples: int  # examples scored for both: the only ones compared
    unmatched: int  # examples scored for one of the two only (left out)
    won: int  # common examples where a scored higher than b
    lost: int
    tied: int
    mean_difference: float | None  # mean of a - b over the common examples; None if none
    p_value: float  # one-sided sign test that a is better than b; 1 when nothing is untied
    verdict: str  # BEYOND_NOISE, WITHIN_NOISE or NOT_COMPARABLE
    interval: tuple[float, float] | None = None  # bootstrap interval of mean_difference,
    # given only when some score is neither 0 nor 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["interval"] = None if self.interval is None else list(self.interval)
        return data


def sign_test(won: int, lost: int) -> float:
    """One-sided exact sign test: P(X >= won) for X ~ Binomial(won + lost, 1/2)."""
    if won < 0 or lost < 0:
        raise ValueError(f"counts must not be negative: won {won}, lost {lost}")
    n = won + lost
    return sum(math.comb(n, k) for k in range(won, n + 1)) / 2**n  # exact integers, one rounding


def compare_scores(a: Iterable[ExampleScore], b: Iterable[ExampleScore], split: str = "",
                   alpha: float = ALPHA) -> Comparison:
    """Compare per-example scores ``a`` with ``b`` (see the module doc). An id scored more
    than once in one of them counts once, with its mean score."""
    sa, sb = _by_id(a), _by_id(b)
    common = sorted(sa.keys() & sb.keys())
    unmatched = len(sa.keys() ^ sb.keys())
    if not common:
        return Comparison(split, 0, unmatched, 0, 0, 0, None, 1.0, NOT_COMPARABLE)
    diffs = [sa[i] - sb[i] for i in common]
    won = sum(1 for d in diffs if d > 0 and not _tie(d))
    lost = sum(1 for d in diffs if d < 0 and not _tie(d))
    p = sign_test(won, lost)
    binary = all(s in (0.0, 1.0) for s in (*(sa[i] for i in common), *(sb[i] for i in common)))
    return Comparison(
        split=split, examples=len(common), unmatched=unmatched, won=won, lost=lost,
        tied=len(common) - won - lost, mean_difference=math.fsum(diffs) / len(diffs),
        p_value=p, verdict=BEYOND_NOISE if p < alpha else WITHIN_NOISE,
        interval=None if binary else bootstrap_interval(diffs))


def compare(a: Candidate, b: Candidate, split: str = "validation",
            alpha: float = ALPHA) -> Comparison:
    """Compare candidate ``a`` with ``b`` on ``split``; a candidate without a score on it
    has no examples, so the two are not comparable."""
    empty: tuple[ExampleScore, ...] = ()
    return compare_scores(a.scores[split].examples if split in a.scores else empty,
                          b.scores[split].examples if split in b.scores else empty,
                          split, alpha)


def bootstrap_interval(diffs: list[float], confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile interval of the mean of ``diffs`` over paired bootstrap resamples."""
    values = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    # a mean lies within the data's range, but rounding can push it out (the mean of three
    # 0.8 is 0.8000000000000002): clip both ends back in
    lowest, highest = float(values.min()), float(values.max())
    return (min(max(float(low), lowest), highest), min(max(float(high), lowest), highest))


def _by_id(scores: Iterable[ExampleScore]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for e in scores:
        sums.setdefault(e.example_id, []).append(e.score)
    return {i: math.fsum(s) / len(s) for i, s in sums.items()}


def _tie(difference: float) -> bool:
    """Equal up to floating-point rounding (e.g. a mean of partial scores computed twice)."""
    return abs(difference) <= 1e-9
