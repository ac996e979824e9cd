"""The DGM selector keeps its weights between selections and re-weighs only what changed:
after any sequence of archive changes, its draws must be exactly those of weighing the
whole archive again (same weights, same block sums, bit for bit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve.selection import DGMSelector
from evolve.selection._base import BLOCK, weighted_draw

from .sel_support import candidate, index_of

N_START = 5 * BLOCK  # enough ids for weighted_draw's per-block path

# one step: ("child", parent pick, score or None for pending), ("finish", pick, score)
steps = st.lists(st.one_of(
    st.tuples(st.just("child"), st.integers(0, 10**6),
              st.one_of(st.none(), st.floats(0, 1.5))),
    st.tuples(st.just("finish"), st.integers(0, 10**6), st.floats(0, 1.5))),
    max_size=60)


def start_index(seed: int):
    rng = np.random.default_rng(seed)
    rows = [candidate(i, float(rng.random()) if rng.random() < 0.8 else None,
                      status=Status.EVALUATED if rng.random() < 0.8 else Status.PENDING,
                      parents=(int(rng.integers(1, i)),) if i > 1 else ())
            for i in range(1, N_START)]
    return index_of(*rows)


def apply(index, step) -> None:
    kind, pick, score = step
    ids = [c.id for c in index.candidates()]
    if kind == "child":
        cid = index.max_id() + 1
        index.publish(candidate(cid, score, parents=(ids[pick % len(ids)],),
                             status=Status.PENDING if score is None else Status.EVALUATED))
    else:
        pending = [c for c in index.candidates(status=Status.PENDING)]
        if pending:
            c = pending[pick % len(pending)]
            index.publish(dataclasses.replace(candidate(c.id, score, parents=c.parent_ids),
                                           slot=c.slot))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.lists(steps, min_size=1, max_size=6),
       st.sampled_from([(10.0, "top3"), (10.0, 0.5), (3.0, "top10"), (1000.0, 5.0)]),
       st.integers(1, 3))
def test_kept_weights_draw_exactly_as_a_full_weighing(seed, rounds, options, n):
    lam, midpoint = options
    index = start_index(seed)
    kept = DGMSelector(lambda_=lam, midpoint=midpoint)
    fresh = DGMSelector(lambda_=lam, midpoint=midpoint)
    for number, round_steps in enumerate(rounds):
        for step in round_steps:
            apply(index, step)
        weights, block_sums = kept._kept.current(kept, index)
        want = fresh.weights(index)
        assert np.array_equal(weights, want)
        full = len(want) // BLOCK
        assert np.array_equal(block_sums, want[: full * BLOCK].reshape(full, BLOCK).sum(axis=1))
        picks = kept.select(index, np.random.default_rng(number), n)
        u = np.random.default_rng(number).random(n)
        assert [s.parent for s in picks] == weighted_draw(want, u).tolist()


def test_only_changed_ids_are_weighed_again(monkeypatch) -> None:
    index = start_index(1)
    selector = DGMSelector(midpoint=0.5)
    selector.select(index, np.random.default_rng(0), 1)  # the first selection weighs all
    weighed: list[int] = []
    formula = DGMSelector._formula

    def counting(self, scores, children, alpha0):
        weighed.append(len(scores))
        return formula(self, scores, children, alpha0)

    monkeypatch.setattr(DGMSelector, "_formula", counting)
    parent = index.candidates(status=Status.EVALUATED)[0].id
    index.publish(candidate(index.max_id() + 1, 0.7, parents=(parent,)))
    selector.select(index, np.random.default_rng(1), 1)
    assert weighed == [2]  # the child and its parent (one more child), not the archive
    DGMSelector(midpoint=0.5).select(index, np.random.default_rng(1), 1)
    assert weighed[-1] == index.max_id() + 1  # a new selector weighs everything


def test_a_new_best_moves_the_midpoint_and_everything_is_weighed_again() -> None:
    index = start_index(2)
    selector = DGMSelector()  # top3
    selector.select(index, np.random.default_rng(0), 1)
    index.publish(candidate(index.max_id() + 1, 1.4))
    selector.select(index, np.random.default_rng(0), 1)
    assert np.array_equal(selector._kept.weights, DGMSelector().weights(index))


def test_the_change_log_reports_changes_and_when_it_no_longer_reaches_back() -> None:
    index = index_of(candidate(1, 0.5))
    mark, changed = index.changed_since(-1)
    assert changed is None  # no mark yet: everything counts as changed
    index.publish(candidate(2, 0.4, parents=(1,)))
    mark, changed = index.changed_since(mark)
    assert sorted(changed) == [1, 2]
    assert index.changed_since(mark) == (mark, [])
    # the log is bounded: republishing one candidate long enough trims it past the mark
    again = index.get(2)
    for _ in range(64):  # up to 262,144 entries
        for _ in range(4096):
            index.publish(again)
        later, changed = index.changed_since(mark)
        if changed is None:
            break
        assert changed == [2] * len(changed)
    assert changed is None and later > mark  # trimmed past the mark
    assert index.changed_since(later) == (later, [])
    index.publish(again)
    assert index.changed_since(later) == (later + 1, [2])  # a recent mark still reaches


@pytest.mark.parametrize("midpoint", ["top3", 0.5])
def test_nothing_evaluated_yet_then_something(midpoint) -> None:
    index = index_of(candidate(1, None, status=Status.PENDING))
    selector = DGMSelector(midpoint=midpoint)
    with pytest.raises(Exception, match="no evaluated candidate"):
        selector.select(index, np.random.default_rng(0), 1)
    index.publish(candidate(1, 0.3))
    assert selector.select(index, np.random.default_rng(0), 1)[0].parent == 1
