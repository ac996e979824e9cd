"""Ranking by the Wilson lower bound: a lucky small batch ranks below a steady large one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archive import ArchiveIndex, Candidate, ExampleScore, SplitScore, Status, Usage
from archive._bounds import wilson_lower_bound


def scored(cid: int, passes: list[int]) -> Candidate:
    examples = tuple(ExampleScore(f"e{i}", float(p)) for i, p in enumerate(passes))
    return Candidate(
        id=cid, slot=cid, kind="prompt", genome={"task_prompts": [f"p{cid}"]}, parent_ids=(),
        operator="seed", generation=0, status=Status.EVALUATED, reason=None, retired_by=None,
        scores={"train": SplitScore("train", float(np.mean(passes)), examples)},
        mutation=None, usage=Usage(), timings={}, descriptors={}, created_at=0.0,
        updated_at=0.0)


def test_wilson_bound_matches_the_formula_and_grows_with_evidence() -> None:
    # 8 of 10: the textbook Wilson interval's lower end at 95 % is 0.4902
    assert wilson_lower_bound(0.8, 10) == pytest.approx(0.4902, abs=1e-4)
    assert wilson_lower_bound(1.0, 2) < wilson_lower_bound(0.9, 100)
    assert wilson_lower_bound(0.5, 0) == 0.0


@given(st.floats(0, 1), st.integers(1, 500))
def test_the_bound_lies_below_the_mean_and_in_the_unit_interval(p: float, n: int) -> None:
    low = wilson_lower_bound(p, n)
    assert 0.0 <= low <= p + 1e-12 and math.isfinite(low)


def test_an_index_ranks_by_the_bound_once_told_and_back() -> None:
    index = ArchiveIndex()
    lucky, steady = scored(1, [1, 1]), scored(2, [1] * 9 + [0])
    for c in (lucky, steady):
        index.publish(c)
    assert [c.id for c in index.top(2)] == [1, 2]  # mean 1.0 beats 0.9
    mark, _ = index.changed_since(-1)
    index.rank_train_by("wilson")
    assert [c.id for c in index.top(2)] == [2, 1]
    assert index.best("train").id == 2
    assert index.fitness_of(np.array([1, 2])) == pytest.approx(
        [wilson_lower_bound(1.0, 2), wilson_lower_bound(0.9, 10)])
    _, changed = index.changed_since(mark)
    assert changed is None or {1, 2} <= set(changed)  # selectors' caches see the change
    index.publish(scored(3, [1] * 40))  # later candidates are ranked the same way
    assert index.best("train").id == 3
    index.rank_train_by("mean")
    assert [c.id for c in index.top(3)] == [1, 3, 2]  # ties at 1.0: the lower id first
    assert [c.fitness for c in index.top(3)] == [1.0, 1.0, 0.9]  # the record keeps the mean
    with pytest.raises(ValueError, match="rank must be one of"):
        index.rank_train_by("median")
