"""GEPA's per-example Pareto selection: the front equals a plain transcription of GEPA's
``remove_dominated_programs``, parents follow the lead counts, the kept leaders agree with
a fresh computation after any archive change."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import ExampleScore, SplitScore, Status
from evolve._errors import ConfigError, SelectionError
from evolve._schema import build, options_of
from evolve.selection._pareto import MEAN_EXAMPLE, ParetoSelector

from .sel_support import candidate, index_of


def scored(cid: int, examples: dict[str, float] | list[tuple[str, float]] | None,
           *, mean: float | None = None, status: Status = Status.EVALUATED,
           parents: tuple[int, ...] = (), retired_by: int | None = None):
    """A candidate with per-example training scores (``examples`` None: pending etc.;
    a list may repeat an example; ``mean`` defaults to the mean of the scores)."""
    base = candidate(cid, None, status=status, parents=parents, retired_by=retired_by)
    if examples is None:
        return base
    rows = list(examples.items()) if isinstance(examples, dict) else list(examples)
    if mean is None:
        mean = sum(s for _, s in rows) / len(rows)
    split = SplitScore("train", mean, tuple(ExampleScore(e, s) for e, s in rows))
    return dataclasses.replace(base, scores={"train": split})


# -- the oracle: GEPA's code, transcribed plainly ---------------------------------------
def oracle_front(candidates, min_score: float = 0.0, retired: bool = True) -> dict[int, int]:
    per_example: dict[object, dict[int, float]] = {}
    fitness = {}
    for c in candidates:
        if c.status is not Status.EVALUATED or "train" not in c.scores:
            continue
        if not retired and c.retired_by is not None:
            continue
        fitness[c.id] = c.scores["train"].mean
        rows: dict[str, list[float]] = {}
        for e in c.scores["train"].examples:
            if not math.isnan(e.score):
                rows.setdefault(e.example_id, []).append(e.score)
        if not rows:
            rows = {MEAN_EXAMPLE: [c.scores["train"].mean]}
        for example, values in rows.items():
            per_example.setdefault(example, {})[c.id] = sum(values) / len(values)
    best = {e: max(s.values()) for e, s in per_example.items()}
    counted = [e for e in per_example if best[e] > min_score] or list(per_example)
    # program_at_pareto_front_valset
    fronts = {e: {i for i, s in per_example[e].items() if s == best[e]} for e in counted}

    # gepa_utils.is_dominated / remove_dominated_programs, word for word
    def is_dominated(y, programs):
        for front in (f for f in fronts.values() if y in f):
            if not any(other in programs for other in front):
                return False
        return True

    programs = sorted({p for f in fronts.values() for p in f}, key=lambda p: (fitness[p], p))
    dominated: set[int] = set()
    found = True
    while found:
        found = False
        for y in programs:
            if y in dominated:
                continue
            if is_dominated(y, set(programs) - {y} - dominated):
                dominated.add(y)
                found = True
                break
    freq: Counter[int] = Counter()
    for front in fronts.values():
        for p in front - dominated:
            freq[p] += 1
    return dict(sorted(freq.items()))


# -- random archives --------------------------------------------------------------------
SCORES = [0.0, 0.0, 0.25, 0.5, 0.5, 1.0, 1.0, math.nan]  # dyadic: every mean is exact
EXAMPLES = ["e0", "e1", "e2", "e3", "e4", "e5"]
STATUSES = [Status.EVALUATED] * 5 + [Status.PENDING, Status.FAILED, Status.INVALID]


@st.composite
def rows(draw, cid: int):
    status = draw(st.sampled_from(STATUSES))
    retired_by = 999 if draw(st.integers(0, 4)) == 0 else None
    if status is Status.PENDING:
        return scored(cid, None, status=status, retired_by=retired_by)
    pairs = draw(st.lists(st.tuples(st.sampled_from(EXAMPLES), st.sampled_from(SCORES)),
                          max_size=5))
    mean = draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])) if not pairs else None
    if mean is None:
        numbers = [s for _, s in pairs if not math.isnan(s)]
        mean = sum(numbers) / len(numbers) if numbers else 0.0
    made = scored(cid, pairs, mean=mean, retired_by=retired_by)
    if status is not Status.EVALUATED:  # a failed or invalid candidate may hold scores too
        made = dataclasses.replace(made, status=status)
    return made


@st.composite
def archives(draw, max_size: int = 14):
    n = draw(st.integers(0, max_size))
    return [draw(rows(cid)) for cid in range(1, n + 1)]


options = st.tuples(st.sampled_from([0.0, 0.5, -1.0, 1.0]), st.booleans())


@settings(max_examples=400, deadline=None)
@given(archives(), options)
def test_front_equals_gepas_own_definition(members, opts) -> None:
    min_score, retired = opts
    index = index_of(*members)
    got = ParetoSelector(min_score=min_score, retired=retired).front(index)
    assert got == oracle_front(members, min_score, retired)
    if got:  # every counted example keeps a leader, so someone leads something
        assert all(k >= 1 for k in got.values())


@settings(max_examples=150, deadline=None)
@given(archives(max_size=10), st.lists(archives(max_size=6), min_size=1, max_size=5), options,
       st.data())
def test_kept_front_follows_every_change(start, rounds, opts, data) -> None:
    """Publish candidates, finish pending ones, retire and revive, between selections: the
    kept front is always the fresh one (and the oracle's), and draws the same parents."""
    min_score, retired = opts
    index = index_of(*start)
    kept = ParetoSelector(min_score=min_score, retired=retired)
    for number, more in enumerate(rounds):
        for row in more:
            next_id = index.max_id() + 1
            known = [c.id for c in index.candidates()]
            if known and data.draw(st.booleans()):  # a new version of a known candidate
                old = index.get(data.draw(st.sampled_from(known)))
                row = dataclasses.replace(row, id=old.id, slot=old.slot,
                                          parent_ids=old.parent_ids)
                if old.fitness is not None and data.draw(st.booleans()):
                    # the same example scores with another mean: its place in the pass
                    mean = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
                    train = dataclasses.replace(old.scores["train"], mean=mean)
                    row = dataclasses.replace(old, scores={"train": train})
            else:
                row = dataclasses.replace(row, id=next_id, slot=next_id)
            index.publish(row)
        everyone = index.candidates()
        fresh = ParetoSelector(min_score=min_score, retired=retired)
        want = oracle_front(everyone, min_score, retired)
        assert kept.front(index) == want == fresh.front(index)
        if want:
            a = kept.select(index, np.random.default_rng(number), 3)
            b = fresh.select(index, np.random.default_rng(number), 3)
            assert a == b


def example_archive():
    """Leads: 1 → {a, c}; 2 → {a, b}; 3 → {d, e, f}; 4 ties 2 on a and b only, with a
    lower mean: dominated (2 still leads both). 5 leads nothing, 6 is retired and leads
    g alone, 7 is pending, 8 failed, 9 invalid."""
    return [
        scored(1, {"a": 1.0, "b": 0.0, "c": 1.0}),
        scored(2, {"a": 1.0, "b": 1.0}),
        scored(3, {"c": 0.5, "d": 1.0, "e": 1.0, "f": 0.5}),
        scored(4, {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}),
        scored(5, {"a": 0.0, "b": 0.0}),
        scored(6, {"g": 0.5, "a": 0.0}, retired_by=10),
        scored(7, None, status=Status.PENDING),
        candidate(8, None, status=Status.FAILED),
        candidate(9, None, status=Status.INVALID),
    ]


def test_front_of_a_known_archive() -> None:
    index = index_of(*example_archive())
    assert ParetoSelector().front(index) == {1: 2, 2: 2, 3: 3, 6: 1}
    # without retired candidates, 6 neither leads g nor beats anyone on a
    assert ParetoSelector(retired=False).front(index) == {1: 2, 2: 2, 3: 3}
    # only examples someone scored above 0.75 on count: f and g (best 0.5) lead nobody
    assert ParetoSelector(min_score=0.75).front(index) == {1: 2, 2: 2, 3: 2}


def test_selection_frequencies_follow_the_lead_counts() -> None:
    index = index_of(*example_archive())
    front = {1: 2, 2: 2, 3: 3, 6: 1}
    n = 200_000
    picks = ParetoSelector().select(index, np.random.default_rng(5), n)
    counts = Counter(s.parent for s in picks)
    assert set(counts) == set(front)
    total = sum(front.values())
    for cid, lead in front.items():
        p = lead / total
        # 6 standard deviations: a miss has probability below 1e-8 for any seed
        assert counts[cid] / n == pytest.approx(p, abs=6 * math.sqrt(p * (1 - p) / n))
    assert all(s.retire == () for s in picks)


def test_same_seed_same_selection_and_busy_parents_allowed() -> None:
    index = index_of(*example_archive())
    a = ParetoSelector().select(index, np.random.default_rng(11), 40, busy=frozenset({3}))
    b = ParetoSelector().select(index, np.random.default_rng(11), 40)
    c = ParetoSelector().select(index, np.random.default_rng(12), 40)
    assert a == b and a != c
    assert 3 in {s.parent for s in a}
    assert ParetoSelector().select(index, np.random.default_rng(0), 0) == []


def test_nothing_to_select_fails_clearly() -> None:
    for index in (index_of(), index_of(candidate(1, None, status=Status.PENDING),
                                       candidate(2, None, status=Status.FAILED),
                                       candidate(3, None, status=Status.INVALID))):
        with pytest.raises(SelectionError, match="no evaluated candidate"):
            ParetoSelector().select(index, np.random.default_rng(0), 1)
        assert ParetoSelector().front(index) == {}
    index = index_of(scored(1, {"a": 1.0}, retired_by=5))
    assert ParetoSelector().select(index, np.random.default_rng(0), 1)[0].parent == 1
    with pytest.raises(SelectionError, match="alive evaluated candidate"):
        ParetoSelector(retired=False).select(index, np.random.default_rng(0), 1)


def test_scores_nobody_beat_zero_on_count_only_when_nothing_else_does() -> None:
    # nothing solved: every example counts (GEPA's rule), so a run can start
    index = index_of(scored(1, {"a": 0.0, "b": 0.0}), scored(2, {"b": 0.0, "c": 0.0}))
    assert ParetoSelector().front(index) == {1: 2, 2: 2}
    # once something is solved, unsolved examples lead nobody
    index.publish(scored(3, {"c": 0.5}))
    assert ParetoSelector().front(index) == {3: 1}
    # all count again: 2 leads only b, which 1 (same mean, checked first, kept for a) leads too
    assert ParetoSelector(min_score=-1.0).front(index) == {1: 2, 3: 1}


def test_candidates_without_example_scores_compete_on_their_mean() -> None:
    index = index_of(scored(1, [], mean=0.4), scored(2, [], mean=0.7), scored(3, [], mean=0.7),
                     scored(4, {"a": 0.1}, mean=0.1))
    # 2 and 3 tie on the pseudo-example: 2 (lower id, same mean) is dropped as dominated
    assert ParetoSelector().front(index) == {3: 1, 4: 1}
    # repeats of one example count with their mean; NaN counts as not scored
    index = index_of(scored(1, [("a", 1.0), ("a", 0.0)]), scored(2, [("a", 0.25)]),
                     scored(3, [("a", math.nan), ("b", 0.5)], mean=0.5))
    assert ParetoSelector().front(index) == {1: 1, 3: 1}


def test_options_and_validation() -> None:
    options = options_of(ParetoSelector)
    assert options == {"min_score": (0.0, options["min_score"][1]),
                       "retired": (True, options["retired"][1])}
    assert all(text for _, text in options.values())
    assert build(ParetoSelector, {"min_score": 0.5, "retired": False}) == \
        ParetoSelector(min_score=0.5, retired=False)
    for bad in ({"min_score": "high"}, {"retired": 3}, {"best": 1}):
        with pytest.raises(ConfigError):
            build(ParetoSelector, bad)
    with pytest.raises(ValueError):
        ParetoSelector(min_score=math.inf)
    assert ParetoSelector.name == "pareto"
