"""The island model: every candidate has one home island (recorded on the child, inherited
from the parent, founders round-robin), each island's best of the generations before a
boundary becomes a guest of the next island, and an inner selector works inside each
island. Everything is derived from the archive: a kept selector, a fresh one and one on
the archive read back must agree."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Candidate, Status
from evolve._errors import SelectionError
from evolve.selection._dgm import DGMSelector
from evolve.selection._islands import ISLAND, IslandsSelector, IslandView

from .sel_support import candidate, index_of


def cand(cid: int, fitness: float | None = 0.5, *, parents=(), generation: int = 0,
         island: int | None = None, status: Status = Status.EVALUATED,
         code: bool = False) -> Candidate:
    c = candidate(cid, fitness, status=status, parents=parents)
    genome = ({"commit": f"{cid:040x}", "mutation_prompt": "improve it"} if code
              else {"task_prompts": [f"prompt {cid} " * (cid % 7)], "mutation_prompt": "m",
                    "context": []})
    return dataclasses.replace(c, generation=generation, genome=genome,
                               kind="code" if code else "prompt",
                               descriptors={} if island is None else {ISLAND: island})


def reference(index, k: int, m: int) -> tuple[dict[int, int], list[set[int]], list[set[int]]]:
    """(home island of every id, evaluated home members, evaluated guests), from scratch by
    the documented rules."""
    cands = index.candidates()
    home: dict[int, int] = {}
    for c in cands:  # parents come first
        value = c.descriptors.get(ISLAND)
        if value is not None:
            home[c.id] = int(value) % k
        elif c.parent_ids and c.parent_ids[0] in index:
            home[c.id] = home[c.parent_ids[0]]
        else:
            home[c.id] = c.slot % k
    evaluated = [c for c in cands if c.fitness is not None]
    guests: list[set[int]] = [set() for _ in range(k)]
    if k > 1:
        for b in range(1, (index.max_generation() + 1) // m + 1):
            for i in range(k):
                pool = [c for c in evaluated if home[c.id] == i and c.generation < b * m]
                if pool:
                    best = max(pool, key=lambda c: (c.fitness, -c.id))
                    guests[(i + 1) % k].add(best.id)
    founders = sorted((c for c in cands if not c.parent_ids), key=lambda c: (c.slot, c.id))
    founded = {home[f.id] for f in founders}
    empty = [j for j in range(k) if j not in founded]
    for t, j in enumerate(empty):
        if founders:
            guests[j].add(founders[t % len(founders)].id)
    ok = {c.id for c in evaluated}
    homes = [{c.id for c in evaluated if home[c.id] == j} for j in range(k)]
    return home, homes, [g & ok for g in guests]


def check_membership(selector: IslandsSelector, index) -> list[tuple[frozenset, frozenset]]:
    k, m = selector.islands, selector.migration_interval
    members = selector.members(index)
    home, homes, guests = reference(index, k, m)
    assert [set(h) for h, _ in members] == homes
    assert [set(g) for _, g in members] == guests
    evaluated = {c.id for c in index.candidates(status=Status.EVALUATED)}
    all_homes = [cid for h, _ in members for cid in h]
    assert sorted(all_homes) == sorted(evaluated)  # each evaluated candidate: one home island
    founders = {c.id for c in index.candidates() if not c.parent_ids}
    for j, (h, g) in enumerate(members):
        assert not h & g  # a guest is counted once, never in its home island
        for cid in g:
            assert home[cid] == (j - 1) % k or cid in founders
    for cid in list(home)[-5:]:
        assert selector.island_of(index, cid) == home[cid]
    return members


outcomes = st.one_of(st.none(), st.just("failed"),
                     st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]))
steps = st.lists(st.one_of(
    st.tuples(st.just("select"), st.integers(1, 3), st.integers(0, 2**16),
              st.lists(outcomes, min_size=3, max_size=3), st.booleans(), st.booleans()),
    st.tuples(st.just("finish"), st.integers(0, 10**6), st.sampled_from([0.0, 0.5, 1.0])),
    st.tuples(st.just("founder"), st.sampled_from([0.2, 0.6])),  # e.g. a late initial unit
), min_size=1, max_size=25)


def write_child(index, parent: int, outcome, island: int | None) -> int:
    cid = index.max_id() + 1
    p = index.get(parent)
    if outcome is None or outcome == "failed":
        c = cand(cid, None, parents=(parent,), generation=p.generation + 1, island=island,
                 status=Status.PENDING if outcome is None else Status.FAILED)
    else:
        c = cand(cid, outcome, parents=(parent,), generation=p.generation + 1, island=island)
    index.publish(c)
    return cid


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.sampled_from(["tournament", "dgm", "map_elites"]),
       st.lists(st.sampled_from([0.1, 0.5, 0.5, 0.9]), min_size=1, max_size=7), steps)
def test_islands_conserve_candidates_and_children_inherit_islands(k, m, inner, founders,
                                                                  run) -> None:
    index = index_of(*(cand(i + 1, s) for i, s in enumerate(founders)))
    kept = IslandsSelector(islands=k, migration_interval=m, inner=inner)
    for step in run:
        members = check_membership(kept, index)
        if step[0] == "founder":
            index.publish(cand(index.max_id() + 1, step[1]))
            continue
        if step[0] == "finish":
            pending = index.candidates(status=Status.PENDING)
            if pending:
                c = pending[step[1] % len(pending)]
                index.publish(dataclasses.replace(c, status=Status.EVALUATED,
                                                  scores=cand(1, step[2]).scores))
            continue
        _, n, seed, results, orphan, use_busy = step
        population = index.population_ids().tolist()
        busy = frozenset(population[::3]) if use_busy else frozenset()
        try:
            selections = kept.select(index, np.random.default_rng(seed), n, busy)
        except SelectionError:
            alive = set(population) - busy
            need = 2 if inner == "tournament" else 1
            assert all(len((h | g) & (alive if inner == "tournament" else h | g)) < need
                       for h, g in members)
            continue
        fresh = dataclasses.replace(kept)  # nothing kept: as after a restart
        assert fresh.select(index, np.random.default_rng(seed), n, busy) == selections
        resumed = index_of(*index.candidates())  # the archive read back
        assert dataclasses.replace(kept).select(resumed, np.random.default_rng(seed), n,
                                                busy) == selections
        assert 1 <= len(selections) <= n
        used = [s.parent for s in selections] + [r for s in selections for r in s.retire]
        if inner == "tournament":
            assert len(used) == len(set(used)) and not set(used) & busy
        for s in selections:
            island = s.descriptors[ISLAND]
            home, guests = members[island]
            assert s.parent in home | guests  # the parent is a member of the island
            assert set(s.retire) <= home  # retirees are home members of the same island
        for s, outcome in zip(selections, results, strict=False):
            island = s.descriptors[ISLAND]
            cid = write_child(index, s.parent, outcome, None if orphan else island)
            for r in s.retire:
                index.publish(dataclasses.replace(index.get(r), retired_by=cid))
            parent_home = kept.island_of(index, s.parent)
            assert kept.island_of(index, cid) == (parent_home if orphan else island)
    check_membership(kept, index)


def test_founders_round_robin_and_children_inherit() -> None:
    index = index_of(*(cand(i, 0.1 * i) for i in range(1, 7)))  # slots 1..6
    selector = IslandsSelector(islands=4)
    assert [selector.island_of(index, i) for i in range(1, 7)] == [1, 2, 3, 0, 1, 2]
    index.publish(cand(7, 0.5, parents=(2,), generation=1))  # no descriptor: the parent's
    index.publish(cand(8, 0.5, parents=(2,), generation=1, island=3))  # its own
    index.publish(cand(9, 0.5, parents=(8,), generation=2))
    index.publish(cand(10, 0.5, parents=(8,), generation=2, island=6))  # modulo 4
    assert [selector.island_of(index, i) for i in (7, 8, 9, 10)] == [2, 3, 3, 2]


def test_migration_at_each_boundary_along_the_ring() -> None:
    # two islands, founders 2 (island 0) and 1 (island 1); migration every 2 generations
    index = index_of(cand(1, 0.3), cand(2, 0.4))
    selector = IslandsSelector(islands=2, migration_interval=2, inner="dgm")
    assert selector.members(index) == [(frozenset({2}), frozenset()), (frozenset({1}),
                                                                       frozenset())]
    index.publish(cand(3, 0.9, parents=(2,), generation=1))  # island 0, generation 1
    # generation 2 is being made: boundary 2, the best before generation 2 migrates
    assert selector.members(index) == [(frozenset({2, 3}), frozenset({1})),
                                       (frozenset({1}), frozenset({3}))]
    index.publish(cand(4, 0.1, parents=(3,), generation=2))
    index.publish(cand(5, 0.8, parents=(1,), generation=3))  # island 1, generation 3
    # boundary 4: island 0's best before generation 4 is #3 again (one guest);
    # island 1's: #5, which joins #1 (the best before generation 2)
    assert selector.members(index) == [(frozenset({2, 3, 4}), frozenset({1, 5})),
                                       (frozenset({1, 5}), frozenset({3}))]
    # a late candidate of an old generation (steady state) displaces a boundary's migrant
    index.publish(cand(6, 0.95, parents=(2,), generation=1))
    assert selector.members(index)[1] == (frozenset({1, 5}), frozenset({6}))
    check_membership(selector, index)


def test_one_seed_is_a_guest_of_every_island() -> None:
    index = index_of(cand(1, 0.5, code=True))
    selector = IslandsSelector(islands=4, inner="dgm", migration_interval=50)
    members = selector.members(index)
    assert members[1] == (frozenset({1}), frozenset())  # slot 1 % 4: the seed lives on island 1
    assert all(m == (frozenset(), frozenset({1})) for j, m in enumerate(members) if j != 1)
    islands = Counter(s.descriptors[ISLAND]
                      for s in selector.select(index, np.random.default_rng(0), 400))
    assert set(islands) == {0, 1, 2, 3}
    assert all(70 < c < 130 for c in islands.values())


def test_a_guest_losing_a_tournament_stays_alive_at_home() -> None:
    # island 0: #2 and #4 at home, island 1's best (#1) as guest; island 1: #1, guest #2
    index = index_of(cand(1, 0.3), cand(2, 0.9), cand(4, 0.1))
    selector = IslandsSelector(islands=2, migration_interval=1)
    assert selector.members(index) == [(frozenset({2, 4}), frozenset({1})),
                                       (frozenset({1}), frozenset({2}))]
    seen = set()
    for seed in range(60):
        [s] = selector.select(index, np.random.default_rng(seed), 1)
        island = s.descriptors[ISLAND]
        seen.add((island, s.parent, s.retire))
        assert all(selector.island_of(index, r) == island for r in s.retire)
    # in island 0, #2 beats the guest #1 without retiring it; at home, #1 loses to guest #2
    assert (0, 2, ()) in seen and (1, 2, (1,)) in seen
    assert not any(island == 0 and 1 in retire for island, _, retire in seen)


def test_an_island_that_cannot_select_hands_its_share_on() -> None:
    # islands=2: island 0 has #2, #4, #6; island 1 has #1 only (no migration yet)
    index = index_of(*(cand(i, 0.1 * i) for i in (1, 2, 4, 6)))
    selector = IslandsSelector(islands=2, migration_interval=100)
    for seed in range(30):
        [s] = selector.select(index, np.random.default_rng(seed), 1)
        assert s.descriptors[ISLAND] == 0 and s.parent in (2, 4, 6)
    with pytest.raises(SelectionError, match="island 0: a tournament needs two"):
        selector.select(index, np.random.default_rng(0), 1, frozenset({2, 4}))


def test_no_candidates_fails_clearly() -> None:
    for inner in ("tournament", "dgm", "map_elites"):
        selector = IslandsSelector(inner=inner)
        with pytest.raises(SelectionError, match="no island can select a parent"):
            selector.select(index_of(), np.random.default_rng(0), 1)
        assert selector.select(index_of(), np.random.default_rng(0), 0) == []


@pytest.mark.parametrize("inner", ["tournament", "dgm", "map_elites"])
def test_every_inner_selector_works_in_islands(inner) -> None:
    index = index_of(*(cand(i, (i * 37 % 11) / 10) for i in range(1, 17)))
    selector = IslandsSelector(islands=3, inner=inner, migration_interval=1)
    for round_ in range(10):
        picks = selector.select(index, np.random.default_rng(round_), 4)
        assert 1 <= len(picks) <= 4
        members = selector.members(index)
        for s in picks:
            home, guests = members[s.descriptors[ISLAND]]
            assert s.parent in home | guests and set(s.retire) <= home
            cid = write_child(index, s.parent, 0.05 * round_, s.descriptors[ISLAND])
            for r in s.retire:
                index.publish(dataclasses.replace(index.get(r), retired_by=cid))
        check_membership(selector, index)


def test_inner_options_reach_the_inner_selector() -> None:
    selector = IslandsSelector(islands=2, inner="dgm", inner_options={"midpoint": 0.5})
    assert all(isinstance(s, DGMSelector) and s.midpoint == 0.5 for s in selector._inners)
    assert len({id(s) for s in selector._inners}) == 2  # each island keeps its own cache


@pytest.mark.parametrize(("options", "match"), [
    ({"islands": 0}, "islands must be"), ({"migration_interval": 0}, "migration_interval"),
    ({"islands": True}, "islands must be"), ({"inner": "islands"}, "inner must be one of"),
    ({"inner_options": {"bogus": 1}}, "inner_options"),
    ({"inner": "dgm", "inner_options": {"midpoint": "best"}}, "inner_options"),
])
def test_bad_options_are_refused(options, match) -> None:
    with pytest.raises(ValueError, match=match):
        IslandsSelector(**options)


def test_island_view_shows_only_members() -> None:
    index = index_of(*(cand(i, 0.1 * i) for i in range(1, 7)))
    selector = IslandsSelector(islands=2, migration_interval=100)
    selector.members(index)
    view = selector._kept.views[1]
    assert isinstance(view, IslandView)
    assert view.population_ids().tolist() == [1, 3, 5]
    assert [c.id for c in view.top(2)] == [5, 3]
    fitness = view.fitness_array()
    assert np.isnan(fitness[[0, 2, 4, 6]]).all() and fitness[5] == pytest.approx(0.5)
    assert view.children_count_array().tolist() == index.children_count_array().tolist()
