"""Lower confidence bounds of a mean score, for ranking candidates by what they have shown
rather than by a lucky batch."""

from __future__ import annotations

import math

#: the normal quantile of a two-sided 95 % interval
Z95 = 1.959963984540054


def wilson_lower_bound(mean: float, n: int, z: float = Z95) -> float:
    """The Wilson score interval's lower end for a pass rate ``mean`` seen on ``n``
    examples (0 when ``n`` is 0). Scores in [0, 1] that are not pass/fail are treated as
    rates too (the bound is then conservative for them)."""
    if n <= 0:
        return 0.0
    p = min(max(mean, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))
