"""Drawing a population member in proportion to its fitness, among those a test accepts.

Crossover and the code merge pick their donor so. Under DGM selection nothing is
retired and the population can be the whole archive, so the draw does not start by
testing every member: it proposes ``tries`` members uniformly and keeps each with
probability fitness / (the archive's best fitness), and the first kept one that passes
the test wins (rejection sampling). Only if none does are all members tested and the
draw made among those that pass. Either stage picks a member with probability
proportional to its fitness among the members that pass, so their mixture does too:
the result has the distribution of the full scan, whichever stage made it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from archive import ArchiveIndex

TRIES = 64


def fitness_proportional(rng: np.random.Generator, fitness: np.ndarray) -> int:
    """An index drawn with probability proportional to fitness (clipped at 0; uniform
    when no fitness is positive)."""
    weights = np.clip(np.nan_to_num(fitness, nan=0.0), 0.0, None)
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        return int(rng.integers(len(fitness)))
    return int(rng.choice(len(fitness), p=weights / total))


def draw_member(view: ArchiveIndex, rng: np.random.Generator, accept: Callable[[int], bool],
                *, tries: int = TRIES) -> int | None:
    """A population member that ``accept`` accepts, drawn with probability proportional to
    fitness (as ``fitness_proportional`` among the accepted members); None if there is no
    such member."""
    ids = view.population_ids()
    if not len(ids):
        return None
    best = view.top(1)  # the archive's best: its fitness bounds every member's
    bound = best[0].fitness if best else None
    if tries > 0 and bound is not None and np.isfinite(bound):
        proposed = ids[rng.integers(len(ids), size=tries)]
        u = rng.random(tries)
        # with no positive fitness in the archive, the draw is uniform: keep every proposal
        kept = proposed[u * bound < view.fitness_of(proposed)] if bound > 0 else proposed
        for cid in kept.tolist():
            if accept(cid):
                return cid
    passed = [cid for cid in ids.tolist() if accept(cid)]
    if not passed:
        return None
    return passed[fitness_proportional(rng, view.fitness_of(np.array(passed, dtype=np.intp)))]
