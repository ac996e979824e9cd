"""Promptbreeder's binary tournament, with replacement of the loser.

Each tournament draws two population members; the fitter one (ties broken at
random) is the parent, and its mutated copy *replaces* the loser, whatever the
child's own fitness turns out to be. The population size therefore stays
constant and selection pressure comes only from the tournaments. ``n``
tournaments use ``2n`` distinct members (disjoint pairs), so no member is both
a winner and a loser in the same round and no loser is retired twice.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex

from .._errors import SelectionError
from ._base import Selection, Selector, without


@dataclass(frozen=True)
class TournamentSelector(Selector):
    """Binary tournaments over disjoint pairs; the winner's child replaces the loser."""

    name: ClassVar[str] = "tournament"

    def select(self, view: ArchiveIndex, rng: np.random.Generator, n: int,
               busy: AbstractSet[int] = frozenset()) -> list[Selection]:
        """``min(n, free // 2)`` tournaments among the population members not ``busy``.

        Raises ``SelectionError`` when fewer than two members are free.
        """
        population = view.population_ids()
        free = without(population, busy)
        if len(free) < 2:
            raise SelectionError(
                f"a tournament needs two population members, but {len(population)} alive "
                f"evaluated candidate(s) exist and {len(population) - len(free)} of them are "
                "busy in other tournaments")
        k = min(n, len(free) // 2)
        if k <= 0:
            return []
        pairs = rng.choice(free, size=2 * k, replace=False).reshape(k, 2)
        fitness = view.fitness_of(pairs.ravel()).reshape(k, 2)
        coin = rng.random(k) < 0.5
        first_wins = (fitness[:, 0] > fitness[:, 1]) | ((fitness[:, 0] == fitness[:, 1]) & coin)
        winners = np.where(first_wins, pairs[:, 0], pairs[:, 1])
        losers = np.where(first_wins, pairs[:, 1], pairs[:, 0])
        return [Selection(parent=int(w), retire=(int(lo),))
                for w, lo in zip(winners.tolist(), losers.tolist(), strict=True)]
