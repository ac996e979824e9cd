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

import math
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex

from .._errors import SelectionError
from .._schema import doc
from ._base import BLOCK, Selection, Selector, full_block_sums, weighted_draw

_TOP = re.compile(r"top(\d+)")


@dataclass(frozen=True)
class DGMSelector(Selector):
    """Parents drawn ∝ sigmoid(λ·(score − α₀)) / (1 + children) over all evaluated candidates."""

    name: ClassVar[str] = "dgm"
    lambda_: float = doc("Sharpness λ of the score sigmoid (DGM: 10).", 10.0)
    midpoint: str | float = doc(
        "Sigmoid midpoint α₀: 'topK' for the mean training score of the K best evaluated "
        "candidates (DGM paper: top3), or a fixed score (DGM code: 0.5).", "top3")
    #: the weights kept in step with the archive between selections (a cache, not an option;
    #: the selector's options never change, the cache object updates itself)
    _kept: _KeptWeights = field(default_factory=lambda: _KeptWeights(), init=False,
                                repr=False, compare=False)

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

    def alpha0(self, view: ArchiveIndex) -> float:
        """The sigmoid midpoint: the fixed one, or the mean training score of the K best
        evaluated candidates (summed best first; NaN when none is evaluated)."""
        if not isinstance(self.midpoint, str):
            return float(self.midpoint)
        best = [c.fitness for c in view.top(int(self.midpoint[3:]))]
        total = 0.0
        for score in best:  # not sum(): from Python 3.12 it compensates, other bits
            total += score
        return total / len(best) if best else math.nan

    def weights(self, view: ArchiveIndex) -> np.ndarray:
        """Unnormalised selection weight of every id from 0 to ``view.max_id()`` (0 for ids
        that are not evaluated candidates)."""
        return self._weigh(view)[0]

    def _weigh(self, view: ArchiveIndex) -> tuple[np.ndarray, bool]:
        """(the weights, whether they are the formula's: False after the fallback)."""
        scores = view.fitness_array()
        unevaluated = np.isnan(scores)
        if unevaluated.all():
            raise SelectionError("no evaluated candidate to select a parent from (every "
                                 "candidate is pending, failed or invalid)")
        alpha0 = self.alpha0(view)
        children = view.children_count_array()
        buf = self._formula(scores, children, alpha0)
        buf[unevaluated] = 0.0
        if buf.sum() > 0.0:
            return buf, True
        # every sigmoid underflowed (very sharp, midpoint far above all scores): log space
        ok = ~unevaluated
        shift = self.lambda_ * (alpha0 - scores[ok])
        log_w = -np.logaddexp(0.0, shift) - np.log(children[ok] + 1)
        buf[ok] = np.exp(log_w - log_w.max())
        return buf, False

    def _formula(self, scores: np.ndarray, children: np.ndarray, alpha0: float) -> np.ndarray:
        """sigmoid(λ(s − α₀)) / (1 + children) == 1 / ((1 + exp(λ(α₀ − s))) (1 + children)),
        in one new buffer reused in place (with 100k candidates, fresh temporaries cost
        more than the arithmetic). The same operations on any subset of ids give the same
        bits, which the kept weights rely on."""
        buf = np.subtract(alpha0, scores)
        buf *= self.lambda_
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(buf, out=buf)
            buf += 1.0
            buf *= children + 1
            np.reciprocal(buf, out=buf)
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
        weights, block_sums = self._kept.current(self, view)
        picks = weighted_draw(weights, rng.random(n), block_sums)  # an index is an id
        return [Selection(parent=int(i)) for i in picks.tolist()]


class _KeptWeights:
    """The weights of every id (and their sums per block of ``BLOCK`` ids, for
    ``weighted_draw``), kept in step with one index through its change log: a selection
    re-weighs only the candidates whose score or child count changed since the last one
    (a steady-state run selects after every candidate, and weighing the whole archive each
    time would grow with it). Everything is weighed again when the midpoint moves, when many ids
    changed, or after the log-space fallback. Gives the same bits as ``weights``."""

    def __init__(self) -> None:
        self.view: ArchiveIndex | None = None
        self.mark = -1
        self.alpha0 = math.nan
        self.exact = False  # False: none yet, or the fallback's (weigh everything again)
        self.weights = np.zeros(0)
        self.block_sums = np.zeros(0)

    def current(self, selector: DGMSelector, view: ArchiveIndex) -> tuple[np.ndarray,
                                                                         np.ndarray]:
        """(the weights, their sums per full block), as ``selector.weights(view)`` gives
        them and as ``weighted_draw`` sums them."""
        mark, changed = view.changed_since(self.mark if self.view is view else -1)
        alpha0 = selector.alpha0(view)
        n = view.max_id() + 1
        if (changed is None or not self.exact or alpha0 != self.alpha0
                or len(changed) > n // 16 + 64 or not self._update(selector, view, changed)):
            self.weights, self.exact = selector._weigh(view)
            self.block_sums = full_block_sums(self.weights)
        self.view, self.mark, self.alpha0 = view, mark, alpha0
        return self.weights, self.block_sums

    def _update(self, selector: DGMSelector, view: ArchiveIndex, changed: list[int]) -> bool:
        """Re-weigh ``changed`` ids in place; False when a full weighing is needed."""
        n = view.max_id() + 1
        weights = self.weights
        if n > len(weights):  # new ids: grow into spare room (ids arrive one by one)
            room = weights.base if weights.base is not None else weights
            if n > len(room):
                room = np.zeros(max(n, 2 * len(room)))
                room[: len(weights)] = weights
            weights = self.weights = room[:n]
        if changed:
            ids = np.fromiter(set(changed), dtype=np.intp)
            scores = view.fitness_of(ids)
            new = selector._formula(scores, view.children_count_of(ids), self.alpha0)
            new[np.isnan(scores)] = 0.0
            weights[ids] = new
            touched = set((ids // BLOCK).tolist())
        else:
            touched = set()
        full = n // BLOCK
        if full > len(self.block_sums):
            touched.update(range(len(self.block_sums), full))
            self.block_sums = np.concatenate([self.block_sums,
                                              np.zeros(full - len(self.block_sums))])
        for b in touched:
            if b < full:
                self.block_sums[b] = full_block_sums(weights[b * BLOCK:(b + 1) * BLOCK])[0]
        return bool(self.block_sums.sum() + weights[full * BLOCK:].sum() > 0.0)
