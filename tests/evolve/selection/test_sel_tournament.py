"""Promptbreeder's binary tournament: disjoint pairs, the winner's child replaces the loser."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve._errors import CladeforgeError, SelectionError
from evolve.selection import SELECTORS, Selection, TournamentSelector, selector_options

from .sel_support import candidate, index_of

STATUSES = [Status.EVALUATED, Status.EVALUATED, Status.EVALUATED, Status.PENDING,
            Status.FAILED, Status.INVALID]


@st.composite
def archives(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    members = []
    for cid in range(1, n + 1):
        status = draw(st.sampled_from(STATUSES))
        fitness = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])) \
            if status is Status.EVALUATED else None
        retired = draw(st.booleans()) and draw(st.booleans())
        members.append(candidate(cid, fitness, status=status,
                                 retired_by=n + 1 if retired else None))
    index = index_of(*members)
    population = index.population_ids().tolist()
    busy = draw(st.sets(st.sampled_from(population))) if population else set()
    busy |= draw(st.sets(st.integers(min_value=100, max_value=110), max_size=2))  # unknown ids
    return index, frozenset(busy)


@settings(max_examples=300, deadline=None)
@given(archives(), st.integers(min_value=0, max_value=25), st.integers(min_value=0, max_value=99))
def test_tournament_properties(archive, n, seed) -> None:
    index, busy = archive
    population = set(index.population_ids().tolist())
    free = population - busy
    selector = TournamentSelector()
    if len(free) < 2:
        with pytest.raises(SelectionError):
            selector.select(index, np.random.default_rng(seed), n, busy)
        return
    selections = selector.select(index, np.random.default_rng(seed), n, busy)
    assert len(selections) == min(n, len(free) // 2)
    used = [s.parent for s in selections] + [r for s in selections for r in s.retire]
    assert len(used) == len(set(used))  # pairs are disjoint
    for s in selections:
        assert len(s.retire) == 1
        [loser] = s.retire
        for cid in (s.parent, loser):
            c = index.get(cid)
            assert cid in free and c.alive and c.status is Status.EVALUATED
        assert index.get(s.parent).fitness >= index.get(loser).fitness
    again = selector.select(index, np.random.default_rng(seed), n, busy)
    assert again == selections


def test_winner_is_the_fitter_and_replaces_the_loser() -> None:
    index = index_of(candidate(1, 0.2), candidate(2, 0.8))
    for seed in range(20):
        assert TournamentSelector().select(index, np.random.default_rng(seed), 1) == [
            Selection(parent=2, retire=(1,))]


def test_ties_are_broken_at_random() -> None:
    index = index_of(candidate(1, 0.5), candidate(2, 0.5))
    wins = Counter(TournamentSelector().select(index, np.random.default_rng(s), 1)[0].parent
                   for s in range(2000))
    assert set(wins) == {1, 2}
    assert wins[1] / 2000 == pytest.approx(0.5, abs=0.05)


def test_every_member_is_equally_likely_to_compete() -> None:
    index = index_of(*(candidate(i, i / 10) for i in range(1, 11)))
    counts = Counter()
    for s in range(3000):
        for sel in TournamentSelector().select(index, np.random.default_rng(s), 2):
            counts.update([sel.parent, *sel.retire])
    expected = 3000 * 4 / 10
    assert all(abs(counts[i] - expected) < 0.1 * expected for i in range(1, 11))


def test_fewer_members_than_asked_gives_as_many_tournaments_as_possible() -> None:
    index = index_of(*(candidate(i, 0.1 * i) for i in range(1, 6)))
    assert len(TournamentSelector().select(index, np.random.default_rng(0), 10)) == 2
    assert TournamentSelector().select(index, np.random.default_rng(0), 0) == []


def test_busy_members_are_never_chosen() -> None:
    index = index_of(*(candidate(i, 0.1 * i) for i in range(1, 7)))
    busy = frozenset({6, 5, 1})
    for seed in range(50):
        [s] = TournamentSelector().select(index, np.random.default_rng(seed), 5, busy)
        assert {s.parent, *s.retire}.isdisjoint(busy)


def test_retired_pending_and_failed_candidates_never_compete() -> None:
    index = index_of(candidate(1, 0.1), candidate(2, 0.2), candidate(3, 1.0, retired_by=9),
                     candidate(4, None, status=Status.PENDING),
                     candidate(5, None, status=Status.FAILED),
                     candidate(6, None, status=Status.INVALID))
    for seed in range(30):
        [s] = TournamentSelector().select(index, np.random.default_rng(seed), 3)
        assert (s.parent, s.retire) == (2, (1,))


@pytest.mark.parametrize(("members", "busy", "match"), [
    ((), frozenset(), "0 alive"),
    ((candidate(1, 0.3),), frozenset(), "1 alive"),
    ((candidate(1, 0.3), candidate(2, 0.4)), frozenset({2}), "1 of them are busy"),
    ((candidate(1, None, status=Status.FAILED), candidate(2, 0.1, retired_by=3)),
     frozenset(), "0 alive"),
])
def test_too_small_population_fails_clearly(members, busy, match) -> None:
    with pytest.raises(SelectionError, match=match) as info:
        TournamentSelector().select(index_of(*members), np.random.default_rng(0), 1, busy)
    assert isinstance(info.value, CladeforgeError)


def test_registry() -> None:
    assert SELECTORS["tournament"] is TournamentSelector
    assert list(selector_options("tournament")) == ["grow_to"]
    assert selector_options("tournament")["grow_to"][0] == 0  # direct use: never grow
