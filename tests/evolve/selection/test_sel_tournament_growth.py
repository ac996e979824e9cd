"""A tournament below ``grow_to`` members grows its population: growth selections retire
nobody, a lone member is a parent on its own, and the rest of the round is ordinary
tournaments; with ``grow_to: 0`` (or a full population) it selects exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve import SelectionError
from evolve._config import EvolutionConfig
from evolve._factory import build_selector
from evolve._genome_kinds import GENOME_KINDS
from evolve.selection import TournamentSelector
from tests.evolve.selection.sel_support import candidate, index_of


def population(fitness: list[float]):
    return index_of(*[candidate(i + 1, f) for i, f in enumerate(fitness)])


def test_a_lone_member_is_the_parent_of_every_growth_child():
    view = population([0.3])
    got = TournamentSelector(grow_to=8).select(view, np.random.default_rng(0), 4)
    assert [(s.parent, s.retire) for s in got] == [(1, ())] * 4
    with pytest.raises(SelectionError, match="two population members"):
        TournamentSelector().select(view, np.random.default_rng(0), 4)
    with pytest.raises(SelectionError):  # the lone member is busy: nothing to select
        TournamentSelector(grow_to=8).select(view, np.random.default_rng(0), 4, {1})


@settings(max_examples=200, deadline=None)
@given(fitness=st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=2, max_size=12),
       grow_to=st.integers(0, 16), n=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_growth_then_tournaments(fitness, grow_to, n, seed):
    view = population(fitness)
    got = TournamentSelector(grow_to=grow_to).select(view, np.random.default_rng(seed), n)
    grow = min(n, max(0, grow_to - len(fitness)))
    growth, duels = got[:grow], got[grow:]
    assert all(s.retire == () for s in growth)
    assert len(duels) == min(n - grow, len(fitness) // 2)
    assert all(len(s.retire) == 1 and s.retire[0] != s.parent for s in duels)
    losers = [s.retire[0] for s in duels]
    assert len(set(losers) | {s.parent for s in duels}) == 2 * len(duels)  # disjoint pairs
    best = max(fitness)
    for s in duels:  # a winner is never worse than its loser
        assert fitness[s.parent - 1] >= fitness[s.retire[0] - 1]
    # a growth parent won a duel against another member: a unique worst never wins
    if fitness.count(min(fitness)) == 1 and min(fitness) < best:
        assert all(s.parent != fitness.index(min(fitness)) + 1 for s in growth)


def test_children_in_flight_count_as_members():
    """Pending children and busy members' children being made count as joining: growth
    never overshoots ``grow_to`` in a steady-state run."""
    pending = candidate(3, None, status=Status.PENDING, parents=(1,))
    view = index_of(candidate(1, 0.9), candidate(2, 0.1), pending)
    lacking = [s for s in TournamentSelector(grow_to=4).select(
        view, np.random.default_rng(0), 5) if not s.retire]
    assert len(lacking) == 1  # 4 - 2 members - 1 pending
    with pytest.raises(SelectionError):  # 4 - 2 - 1 pending - 1 busy: no growth, no duel
        TournamentSelector(grow_to=4).select(view, np.random.default_rng(0), 5, {2})
    got = TournamentSelector(grow_to=5).select(view, np.random.default_rng(0), 5, {2})
    assert [(s.parent, s.retire) for s in got] == [(1, ())]  # the one free member grows it


def test_without_growth_the_draws_are_the_classic_tournaments():
    view = population([0.1, 0.5, 0.9, 0.2, 0.7, 0.4])
    for seed in range(20):
        a = TournamentSelector().select(view, np.random.default_rng(seed), 3)
        b = TournamentSelector(grow_to=6).select(view, np.random.default_rng(seed), 3)
        assert a == b  # full population: no growth, the same rng draws


def test_growth_parents_are_duel_winners_in_proportion():
    """With two members 0.9 and 0.1 every growth duel is the same pair: the fitter wins."""
    view = population([0.9, 0.1])
    got = TournamentSelector(grow_to=100).select(view, np.random.default_rng(1), 50)
    assert [s.parent for s in got] == [1] * 50


@pytest.mark.parametrize("bad", [-1, 1.5, True, "8"])
def test_grow_to_must_be_a_whole_number(bad):
    with pytest.raises(ValueError, match="grow_to"):
        TournamentSelector(grow_to=bad)


def test_the_run_sets_grow_to_from_the_population_size_unless_given():
    code = GENOME_KINDS["code"]
    built = build_selector(EvolutionConfig(selector="tournament", population_size=6), code)
    assert built.grow_to == 6
    given_ = build_selector(EvolutionConfig(selector="tournament", population_size=6,
                                            selector_options={"grow_to": 0}), code)
    assert given_.grow_to == 0
    islands = build_selector(EvolutionConfig(selector="islands", population_size=9,
                                             selector_options={"islands": 4}), code)
    assert {inner.grow_to for inner in islands._inners} == {3}  # ceil(9 / 4)
    small = build_selector(EvolutionConfig(selector="islands", population_size=2,
                                           selector_options={"islands": 4}), code)
    assert {inner.grow_to for inner in small._inners} == {2}  # a tournament needs two
    dgm_inside = build_selector(EvolutionConfig(
        selector="islands", population_size=9,
        selector_options={"islands": 4, "inner": "dgm"}), code)
    assert dgm_inside.inner_options == {}
