"""Promptbreeder's binary tournament, with replacement of the loser.

Each tournament draws two population members; the fitter one (ties broken at
random) is the parent, and its mutated copy *replaces* the loser, whatever the
child's own fitness turns out to be. The population size therefore stays
constant and selection pressure comes only from the tournaments. ``n``
tournaments use ``2n`` distinct members (disjoint pairs), so no member is both
a winner and a loser in the same round and no loser is retired twice.

A run that starts from one seed (a code run) has no pair to draw: below ``grow_to``
members the population grows first. Each growth selection's parent is the winner of a
tournament (a lone member wins by default) and its child joins without replacing anyone;
the remaining selections of the round are ordinary tournaments.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex

from .._errors import SelectionError
from .._schema import doc
from ._base import Selection, Selector, without


@dataclass(frozen=True)
class TournamentSelector(Selector):
    """Binary tournaments over disjoint pairs; the winner's child replaces the loser."""

    name: ClassVar[str] = "tournament"
    grow_to: int = doc(
        "Population size below which the population grows: a tournament's winner (or a "
        "lone member) gets a child that joins without replacing the loser. A run sets it "
        "to evolution.population_size (inside islands: its share per island, at least 2); "
        "0: never grow.", 0)

    def __post_init__(self) -> None:
        if isinstance(self.grow_to, bool) or not isinstance(self.grow_to, int) \
                or self.grow_to < 0:
            raise ValueError(f"grow_to must be an int >= 0, not {self.grow_to!r}")

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """Up to ``n`` selections among the population members not ``busy``: first one
        growth selection per member the population lacks of ``grow_to`` (``_lacking``),
        then ``min(rest, free // 2)`` tournaments that retire their losers.

        Raises ``SelectionError`` when no member is free, or fewer than two are and the
        population needs no growth.
        """
        population = view.population_ids()
        free = without(population, busy)
        grow = min(n, self._lacking(view, len(population), busy)) if len(free) else 0
        if len(free) < 2 and not grow:
            raise SelectionError(
                f"a tournament needs two population members, but {len(population)} alive "
                f"evaluated candidate(s) exist and {len(population) - len(free)} of them are "
                "busy in other tournaments")
        out = [Selection(parent=int(w)) for w in self._growth_parents(view, rng, free, grow)]
        k = min(n - grow, len(free) // 2)
        if k <= 0:
            return out
        pairs = rng.choice(free, size=2 * k, replace=False).reshape(k, 2)
        winners, losers = _duels(view, rng, pairs)
        return out + [Selection(parent=int(w), retire=(int(lo),))
                      for w, lo in zip(winners.tolist(), losers.tolist(), strict=True)]

    def _lacking(self, view: ArchiveIndex, members: int, busy: AbstractSet[int]) -> int:
        """Members the population lacks of ``grow_to``, counting every pending child and
        every busy member's child still being made as one that will join (a child in a
        tournament joins or gives its loser back): a run with children in flight never
        grows past ``grow_to``. 0 when ``grow_to`` is 0."""
        if not self.grow_to:
            return 0
        return max(0, self.grow_to - members - view.pending_count() - len(busy))

    @staticmethod
    def _growth_parents(view: ArchiveIndex, rng: np.random.Generator, free: np.ndarray,
                        count: int) -> list[int]:
        """The winners of ``count`` tournaments between two distinct free members (pairs
        drawn independently: nobody is retired), or the lone free member ``count`` times."""
        if count <= 0:
            return []
        m = len(free)
        if m == 1:
            return [int(free[0])] * count
        first = rng.integers(m, size=count)
        second = (first + 1 + rng.integers(m - 1, size=count)) % m  # never the first
        winners, _ = _duels(view, rng, np.stack([free[first], free[second]], axis=1))
        return winners.tolist()


def _duels(view: ArchiveIndex, rng: np.random.Generator, pairs: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Winners and losers of the ``(k, 2)`` pairs: the fitter, ties by a coin."""
    k = len(pairs)
    fitness = view.fitness_of(pairs.ravel()).reshape(k, 2)
    coin = rng.random(k) < 0.5
    first_wins = (fitness[:, 0] > fitness[:, 1]) | ((fitness[:, 0] == fitness[:, 1]) & coin)
    return (np.where(first_wins, pairs[:, 0], pairs[:, 1]),
            np.where(first_wins, pairs[:, 1], pairs[:, 0]))
