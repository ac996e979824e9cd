"""The EDA listings and the donor draw read the population lazily (under DGM selection it
can be the whole archive): they must give what reading every member first would give,
and read only a few members of a large population."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.operators import EDA, EDARankIndex
from evolve.operators._base import member_prompt
from evolve.operators._donor import draw_member
from evolve.operators._eda import best_first, shuffled
from evolve.operators._text import distinct

from .op_support import candidate, index_of

WORDS = ("think", "step", "draw", "check", "answer", "carefully", "first", "sum")


def population_prompts(view, slot: int) -> list[tuple[int, float, str]]:
    """(id, fitness, task prompt at ``slot``) of every member, read first, in id order."""
    ids = view.population_ids().tolist()
    return [(cid, view.get(cid).fitness, member_prompt(view, cid, slot)) for cid in ids]


def eda_by_full_listing(op: EDA, view, slot: int, rng: np.random.Generator) -> list[str]:
    """The listing made by reading every member first, in the same random order."""
    prompts = {cid: text for cid, _, text in population_prompts(view, slot)}
    order = list(shuffled(view.population_ids(), rng, 8 * op.max_items))
    texts = [prompts[cid] for cid in order]
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


def view_of(rows):
    return index_of(*(candidate(i + 1, prompts, fitness=fit, retired_by=999 if dead else None)
                      for i, (prompts, fit, dead) in enumerate(rows)))


@settings(max_examples=150, deadline=None)
@given(members, st.integers(0, 2), st.integers(0, 2**16), st.integers(1, 6),
       st.sampled_from([0.5, 0.85, 1.0]))
def test_lazy_listings_equal_the_full_listings(rows, slot, seed, max_items, threshold):
    view = view_of(rows)
    eda = EDA(max_items=max_items, similarity_threshold=threshold)
    rank = EDARankIndex(max_items=max_items, similarity_threshold=threshold)
    got = eda._listing(view, slot, np.random.default_rng(seed))
    assert got == eda_by_full_listing(eda, view, slot, np.random.default_rng(seed))
    assert rank._listing(view, slot, None) == rank_by_full_listing(rank, view, slot)


@settings(max_examples=150, deadline=None)
@given(members, st.integers(1, 50))
def test_best_first_reads_the_archive_leaders_in_the_population_order(rows, first):
    """Read in steps of the archive's k best (retired ones among them), the members come in
    exactly the order of sorting the whole population by fitness, then id."""
    view = view_of(rows)
    ids = view.population_ids().tolist()
    expected = sorted(ids, key=lambda cid: (-view.get(cid).fitness, cid))
    assert list(best_first(view, first)) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), unique=True, max_size=60), st.integers(0, 70),
       st.integers(0, 2**16))
def test_shuffled_yields_every_id_once(ids, head, seed):
    order = list(shuffled(np.array(ids, dtype=np.intp), np.random.default_rng(seed), head))
    assert sorted(order) == sorted(ids)


@pytest.mark.parametrize("head", [0, 1, 2, 4])
def test_shuffled_orders_are_uniform(head):
    """All 24 orders of 4 ids, whether the head drawn first is 0, 1, 2 or all of them."""
    n = 24_000
    counts = Counter(tuple(shuffled(np.array([5, 6, 7, 8]), np.random.default_rng(s), head))
                     for s in range(n))
    assert set(counts) == set(permutations([5, 6, 7, 8]))
    assert max(abs(c - n / 24) for c in counts.values()) < 0.15 * n / 24


@pytest.mark.parametrize("tries", [0, 1, 64])
def test_donor_draw_is_fitness_proportional_among_accepted_members(tries):
    """Rejection sampling (tries > 0), the full scan (tries = 0) and their mixture draw
    alike: each accepted member with probability proportional to its fitness."""
    fitness = {1: 0.8, 2: 0.1, 3: 0.3, 4: 0.0, 5: 0.6, 6: 0.2}
    view = index_of(*(candidate(cid, (f"p{cid}",), fitness=f) for cid, f in fitness.items()),
                    candidate(7, ("dead",), fitness=1.0, retired_by=8))
    accepted = {2, 3, 4, 6}  # not the best member, 1, nor 5
    n = 12_000
    counts = Counter(draw_member(view, np.random.default_rng(s), accepted.__contains__,
                                 tries=tries) for s in range(n))
    assert set(counts) == {2, 3, 6}
    total = sum(fitness[c] for c in accepted)
    for cid in (2, 3, 6):
        assert counts[cid] / n == pytest.approx(fitness[cid] / total, abs=0.02)


def test_donor_draw_is_uniform_when_no_fitness_is_positive():
    view = index_of(*(candidate(cid, fitness=0.0) for cid in range(1, 5)))
    n = 8000
    counts = Counter(draw_member(view, np.random.default_rng(s), lambda cid: cid != 1)
                     for s in range(n))
    assert set(counts) == {2, 3, 4}
    assert all(c / n == pytest.approx(1 / 3, abs=0.03) for c in counts.values())


def test_donor_draw_with_no_accepted_member_is_none():
    view = index_of(candidate(1, fitness=0.5), candidate(2, fitness=0.0))
    assert draw_member(view, np.random.default_rng(0), lambda cid: False) is None
    assert draw_member(index_of(), np.random.default_rng(0), lambda cid: True) is None


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
    tested = []
    for seed in range(20):
        tested.clear()
        assert draw_member(view, np.random.default_rng(seed),
                           lambda cid: tested.append(cid) or cid % 2 == 0) is not None
        assert len(tested) < 100
