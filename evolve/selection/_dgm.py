"""The Darwin Gödel Machine's parent selection: good and little-explored first.

Every evaluated candidate (alive or retired: the DGM keeps its whole archive)
may be a parent, with probability proportional to

    sigmoid(lambda * (score - alpha0)) * 1 / (1 + children)

where ``children`` counts the candidate's existing children. Parents are drawn
with replacement and nothing is retired.

The midpoint ``alpha0`` defaults to the mean score of the top-3 evaluated
candidates ("top3"; "topK" for another K), the choice attributed to the DGM
paper (Zhang et al. 2025). What could be checked against source: the released
implementation (jennyzzt/dgm, ``DGM_outer.py``, ``choose_selfimproves`` with
``method='score_child_prop'``) uses a *fixed* midpoint,
``1 / (1 + exp(-10 * (score - 0.5)))`` times ``1 / (1 + children_count)``;
``midpoint=0.5`` (with the default ``lambda_=10``) reproduces it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive._index import ArchiveIndex

from .._errors import SelectionError
from .._schema import doc
from ._base import Selection, Selector, weighted_draw

_TOP = re.compile(r"top(\d+)")


@dataclass(frozen=True)
class DGMSelector(Selector):
    """Parents drawn ∝ sigmoid(λ·(score − α₀)) / (1 + children) over all evaluated candidates."""

    name: ClassVar[str] = "dgm"
    lambda_: float = doc("Sharpness λ of the score sigmoid (DGM: 10).", 10.0)
    midpoint: str | float = doc(
        "Sigmoid midpoint α₀: 'topK' for the mean training score of the K best evaluated "
        "candidates (DGM paper: top3), or a fixed score (DGM code: 0.5).", "top3")

    def __post_init__(self) -> None:
        if not np.isfinite(self.lambda_) or self.lambda_ < 0:
            raise ValueError("lambda_ must be a finite number >= 0")
        if isinstance(self.midpoint, str):
            m = _TOP.fullmatch(self.midpoint)
            if m is None or int(m.group(1)) < 1:
                raise ValueError(f"midpoint must be 'topK' (K >= 1) or a number, "
                                 f"not {self.midpoint!r}")
        elif not np.isfinite(self.midpoint):
            raise ValueError("midpoint must be finite")

    def alpha0(self, scores: np.ndarray) -> float:
        """The sigmoid midpoint for these candidate scores (NaN = not evaluated)."""
        if not isinstance(self.midpoint, str):
            return float(self.midpoint)
        return _top_mean(np.where(np.isnan(scores), -np.inf, scores), int(self.midpoint[3:]))

    def weights(self, view: ArchiveIndex) -> np.ndarray:
        """Unnormalised selection weight of every id from 0 to ``view.max_id()`` (0 for ids
        that are not evaluated candidates)."""
        # one float buffer reused in place: with 100k candidates, fresh temporaries cost
        # more (allocation, page faults) than the arithmetic
        scores = view.fitness_array()
        unevaluated = np.isnan(scores)
        if unevaluated.all():
            raise SelectionError("no evaluated candidate to select a parent from (every "
                                 "candidate is pending, failed or invalid)")
        buf = scores.copy()
        if isinstance(self.midpoint, str):
            buf[unevaluated] = -np.inf
            alpha0 = _top_mean(buf, int(self.midpoint[3:]))
        else:
            alpha0 = float(self.midpoint)
        # sigmoid(x) / (1 + children) == 1 / ((1 + exp(-x)) * (1 + children)), x = λ(s − α₀)
        np.subtract(alpha0, scores, out=buf)
        buf *= self.lambda_
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(buf, out=buf)
            buf += 1.0
            children = view.children_count_array()
            children += 1
            buf *= children
            np.reciprocal(buf, out=buf)
        buf[unevaluated] = 0.0
        if buf.sum() > 0.0:
            return buf
        # every sigmoid underflowed (very sharp, midpoint far above all scores): log space
        ok = ~unevaluated
        shift = self.lambda_ * (alpha0 - scores[ok])
        log_w = -np.logaddexp(0.0, shift) - np.log(children[ok])
        buf[ok] = np.exp(log_w - log_w.max())
        return buf

    def probabilities(self, view: ArchiveIndex) -> tuple[np.ndarray, np.ndarray]:
        """(ids of every evaluated candidate, their selection probabilities)."""
        w = self.weights(view)
        ids = np.flatnonzero(~np.isnan(view.fitness_array()))
        return ids, w[ids] / w.sum()

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """``n`` parents drawn with replacement; busy candidates may be parents (nothing
        is retired)."""
        if n <= 0:
            return []
        picks = weighted_draw(self.weights(view), rng.random(n))  # an index is an id
        return [Selection(parent=int(i)) for i in picks.tolist()]


def _top_mean(values: np.ndarray, k: int) -> float:
    """Mean of the ``k`` largest finite values (fewer if fewer exist); ``values`` is
    overwritten."""
    k = min(k, int(np.count_nonzero(values > -np.inf)))
    if k > 4:
        return float(np.partition(values, len(values) - k)[len(values) - k:].mean())
    total = 0.0
    for _ in range(k):  # a few passes of argmax beat a partition for small k
        i = int(values.argmax())
        total += values[i]
        values[i] = -np.inf
    return total / k
