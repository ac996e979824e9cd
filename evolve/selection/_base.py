"""The selector contract: choose parents (and the members their children replace).

A selector sees the archive only through a read-only
:class:`~archive.ArchiveIndex` and draws every random choice from the injected
generator. ``busy`` holds the ids taking part in in-flight work (steady-state
mode): a selector never retires them, and a tournament never uses them at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex


@dataclass(frozen=True)
class Selection:
    """One parent to mutate, the population members its child replaces, and what the
    selector records on the child (e.g. its island), as the child's descriptors."""

    parent: int
    retire: tuple[int, ...] = ()
    descriptors: Mapping[str, float] = field(default_factory=dict)


class Selector(ABC):
    """Chooses parents. Options are dataclass fields (default + one-line doc)."""

    name: ClassVar[str]

    @abstractmethod
    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """Up to ``n`` selections; raises ``SelectionError`` when none is possible."""



def without(ids: np.ndarray, busy: AbstractSet[int]) -> np.ndarray:
    """``ids`` minus the busy ones."""
    if not busy:
        return ids
    if len(ids) <= 4096:  # np.isin's setup costs more than a pass in Python
        kept = [i for i in ids.tolist() if i not in busy]
        return np.array(kept, dtype=ids.dtype)
    return ids[~np.isin(ids, np.fromiter(busy, dtype=np.int64, count=len(busy)))]


BLOCK = 512  # weights per block in weighted_draw


def weighted_draw(weights: np.ndarray, u: np.ndarray,
                  block_sums: np.ndarray | None = None) -> np.ndarray:
    """Indices drawn with probability proportional to ``weights`` (>= 0, some > 0), one per
    uniform in ``u`` (values in [0, 1)), by inverting the cumulative weights.

    For a few draws from many weights, the cumulative sum is taken over block sums
    and then inside the one block each draw lands in, which avoids a sequential
    ``cumsum`` over the whole archive. ``block_sums``, if given, are the sums of the
    full blocks of ``BLOCK`` weights (a caller that keeps them saves the summing).
    An index of zero weight is never returned.
    """
    n = len(weights)
    last = _last_positive(weights)
    full = n // BLOCK
    if full < 4 or len(u) * BLOCK * 4 > n:
        cdf = np.cumsum(weights)
        return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), last)
    tail = weights[full * BLOCK:]
    if block_sums is None:
        block_sums = full_block_sums(weights)
    block_cdf = np.cumsum(np.append(block_sums, tail.sum()))
    targets = u * block_cdf[-1]
    picked = np.minimum(np.searchsorted(block_cdf, targets, side="right"), last // BLOCK)
    out = np.empty(len(u), dtype=np.intp)
    for k, (target, b) in enumerate(zip(targets.tolist(), picked.tolist(), strict=True)):
        row = weights[b * BLOCK:(b + 1) * BLOCK]
        inner = np.cumsum(row)
        rest = target - (block_cdf[b] - inner[-1])
        j = int(np.searchsorted(inner, rest, side="right"))
        out[k] = b * BLOCK + min(j, _last_positive(row))
    return out


def full_block_sums(weights: np.ndarray) -> np.ndarray:
    """The sums of the full blocks of ``BLOCK`` weights, as ``weighted_draw`` takes them
    (whoever keeps them must sum the same way, to draw the same bits)."""
    full = len(weights) // BLOCK
    return weights[: full * BLOCK].reshape(full, BLOCK).sum(axis=1)


def _last_positive(weights: np.ndarray) -> int:
    """The index of the last weight > 0 (the last index if none is), looking back from
    the end one block at a time: it is usually near the end."""
    end = len(weights)
    while end > 0:
        start = max(0, end - BLOCK)
        positive = weights[start:end] > 0.0
        if positive.any():
            return end - 1 - int(np.argmax(positive[::-1]))
        end = start
    return len(weights) - 1
