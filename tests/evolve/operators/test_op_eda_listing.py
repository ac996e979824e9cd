"""The EDA listings read the population lazily (under DGM selection it can be the whole
archive): they must list exactly what listing every member first would list, and read
only a few members of a large population."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.operators import EDA, EDARankIndex
from evolve.operators._base import population_prompts
from evolve.operators._text import distinct

from .op_support import candidate, index_of

WORDS = ("think", "step", "draw", "check", "answer", "carefully", "first", "sum")


def eda_by_full_listing(op: EDA, view, slot: int, rng: np.random.Generator) -> list[str]:
    """The listing as the previous version made it (every member read first)."""
    members = population_prompts(view, slot)
    texts = [members[i][2] for i in rng.permutation(len(members))]
    return [texts[i] for i in distinct(texts, op.similarity_threshold, op.max_items)]


def rank_by_full_listing(op: EDARankIndex, view, slot: int) -> list[str]:
    members = population_prompts(view, slot)
    texts = [m[2] for m in sorted(members, key=lambda m: (-m[1], m[0]))]
    kept = distinct(texts, op.similarity_threshold, op.max_items)
    return [texts[i] for i in reversed(kept)]


members = st.lists(st.tuples(
    st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
             min_size=1, max_size=3),
    st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.booleans()), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(members, st.integers(0, 2), st.integers(0, 2**16), st.integers(1, 6),
       st.sampled_from([0.5, 0.85, 1.0]))
def test_lazy_listings_equal_the_full_listings(rows, slot, seed, max_items, threshold):
    view = index_of(*(candidate(i + 1, prompts, fitness=fit, retired_by=999 if dead else None)
                      for i, (prompts, fit, dead) in enumerate(rows)))
    eda = EDA(max_items=max_items, similarity_threshold=threshold)
    rank = EDARankIndex(max_items=max_items, similarity_threshold=threshold)
    got = eda._listing(view, slot, np.random.default_rng(seed))
    assert got == eda_by_full_listing(eda, view, slot, np.random.default_rng(seed))
    assert rank._listing(view, slot, None) == rank_by_full_listing(rank, view, slot)


def test_a_large_population_is_read_only_as_far_as_needed():
    view = index_of(*(candidate(i, (f"{WORDS[i % 8]} {i} {WORDS[i * 7 % 8]} idea {i * 31}",),
                                fitness=(i % 97) / 97) for i in range(1, 20_001)))
    reads = []
    get = view.get
    view.get = lambda cid: reads.append(cid) or get(cid)  # type: ignore[method-assign]
    for op, rng in ((EDA(max_items=10), np.random.default_rng(1)),
                    (EDARankIndex(max_items=10), None)):
        reads.clear()
        assert len(op._listing(view, 0, rng)) == 10
        assert len(reads) < 100  # of 20,000 members
