"""DGM parent selection: sigmoid(λ(score − α₀)) / (1 + children) over the whole archive."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve._errors import ConfigError, SelectionError
from evolve._schema import build
from evolve.selection import SELECTORS, DGMSelector, Selection, selector_options
from evolve.selection._base import weighted_draw

from .sel_support import candidate, index_of, with_children


def expected(scores: dict[int, float], children: dict[int, int], lam: float,
             alpha0: float) -> dict[int, float]:
    w = {i: 1 / (1 + math.exp(-lam * (s - alpha0))) / (1 + children.get(i, 0))
         for i, s in scores.items()}
    total = sum(w.values())
    return {i: v / total for i, v in w.items()}


def archive():
    """Evaluated (one retired) candidates with children, plus ineligible ones."""
    scores = {1: 0.2, 2: 0.5, 3: 0.9, 4: 0.6, 5: 0.4, 6: 0.8}
    index = index_of(*(candidate(i, s, retired_by=99 if i == 5 else None)
                       for i, s in scores.items()),
                     candidate(7, None, status=Status.PENDING),
                     candidate(8, None, status=Status.FAILED, parents=(3,)),
                     candidate(9, None, status=Status.INVALID, parents=(3,)))
    next_id = with_children(index, 3, 2, 10)  # 3 now has 4 children
    with_children(index, 1, 1, next_id)
    return index, scores, {3: 4, 1: 1}


def test_probabilities_match_the_formula_with_top3_midpoint() -> None:
    index, scores, children = archive()
    ids, p = DGMSelector().probabilities(index)
    alpha0 = (0.9 + 0.8 + 0.6) / 3
    want = expected(scores, children, 10.0, alpha0)
    assert ids.tolist() == sorted(want)
    assert p == pytest.approx([want[i] for i in ids.tolist()], rel=1e-9)


def test_fixed_midpoint_reproduces_the_dgm_code() -> None:
    index, scores, children = archive()
    ids, p = DGMSelector(lambda_=10.0, midpoint=0.5).probabilities(index)
    want = expected(scores, children, 10.0, 0.5)
    assert p == pytest.approx([want[i] for i in ids.tolist()], rel=1e-9)
    ids, p = DGMSelector(lambda_=3.0, midpoint="top1").probabilities(index)
    want = expected(scores, children, 3.0, 0.9)
    assert p == pytest.approx([want[i] for i in ids.tolist()], rel=1e-9)


def test_empirical_frequencies_match_the_probabilities() -> None:
    index, scores, children = archive()
    want = expected(scores, children, 10.0, (0.9 + 0.8 + 0.6) / 3)
    n = 200_000
    picks = DGMSelector().select(index, np.random.default_rng(7), n)
    counts = Counter(s.parent for s in picks)
    assert set(counts) <= set(scores)
    for i, p in want.items():
        assert counts[i] / n == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-4)


def test_a_candidate_with_many_children_is_chosen_less() -> None:
    index = index_of(candidate(1, 0.7), candidate(2, 0.7))
    with_children(index, 1, 5, 3)
    n = 60_000
    counts = Counter(s.parent for s in DGMSelector().select(index, np.random.default_rng(1), n))
    assert counts[2] / counts[1] == pytest.approx(6.0, rel=0.1)


def test_ineligible_candidates_are_never_chosen_but_retired_ones_are() -> None:
    index, _, _ = archive()
    chosen = {s.parent for s in DGMSelector().select(index, np.random.default_rng(3), 20_000)}
    assert chosen == {1, 2, 3, 4, 5, 6}  # 5 is retired but evaluated: DGM keeps everyone
    assert all(index.get(i).status is Status.EVALUATED for i in chosen)


def test_never_retires_and_ignores_busy_for_parents() -> None:
    index, _, _ = archive()
    picks = DGMSelector().select(index, np.random.default_rng(0), 50, busy=frozenset({3, 6}))
    assert len(picks) == 50 and all(s.retire == () for s in picks)
    assert all(isinstance(s, Selection) for s in picks)


def test_same_seed_same_selection() -> None:
    index, _, _ = archive()
    a = DGMSelector().select(index, np.random.default_rng(11), 30)
    b = DGMSelector().select(index, np.random.default_rng(11), 30)
    c = DGMSelector().select(index, np.random.default_rng(12), 30)
    assert a == b and a != c


def test_nothing_evaluated_fails_clearly() -> None:
    for index in (index_of(), index_of(candidate(1, None, status=Status.PENDING),
                                       candidate(2, None, status=Status.FAILED))):
        with pytest.raises(SelectionError, match="no evaluated candidate"):
            DGMSelector().select(index, np.random.default_rng(0), 1)
    assert DGMSelector().select(index_of(), np.random.default_rng(0), 0) == []


def test_extreme_sharpness_stays_finite() -> None:
    index = index_of(candidate(1, 0.0), candidate(2, 1.0), candidate(3, 0.999))
    ids, p = DGMSelector(lambda_=1e6, midpoint=0.5).probabilities(index)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    assert p[0] == 0.0
    ids, p = DGMSelector(lambda_=0.0).probabilities(index)
    assert p == pytest.approx([1 / 3] * 3)
    # every sigmoid underflows: the ratio is still right (computed in log space)
    index = index_of(candidate(1, 0.2), candidate(2, 0.21))
    ids, p = DGMSelector(lambda_=1000.0, midpoint=5.0).probabilities(index)
    assert np.isfinite(p).all() and p[1] / p[0] == pytest.approx(math.exp(10.0))
    assert {s.parent for s in DGMSelector(lambda_=1000.0, midpoint=5.0).select(
        index, np.random.default_rng(0), 100)} == {2}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 4), st.booleans()), min_size=1,
                max_size=30),
       st.floats(0, 50), st.sampled_from(["top1", "top3", "top10", 0.0, 0.5, 1.0]))
def test_probabilities_match_formula_property(rows, lam, midpoint) -> None:
    index = index_of(*(candidate(i + 1, s, retired_by=999 if dead else None)
                       for i, (s, _, dead) in enumerate(rows)))
    next_id = len(rows) + 1
    for i, (_, k, _) in enumerate(rows):
        next_id = with_children(index, i + 1, k, next_id)
    scores = {i + 1: s for i, (s, _, _) in enumerate(rows)}
    if isinstance(midpoint, str):
        k = int(midpoint[3:])
        alpha0 = float(np.mean(sorted(scores.values(), reverse=True)[:k]))
    else:
        alpha0 = midpoint
    ids, p = DGMSelector(lambda_=lam, midpoint=midpoint).probabilities(index)
    assert ids.tolist() == sorted(scores)
    want = expected(scores, {i + 1: k for i, (_, k, _) in enumerate(rows)}, lam, alpha0)
    assert p == pytest.approx([want[i] for i in ids.tolist()], rel=1e-6, abs=1e-12)


def test_options_and_validation() -> None:
    assert SELECTORS["dgm"] is DGMSelector
    options = selector_options("dgm")
    assert options["lambda_"][0] == 10.0 and options["midpoint"][0] == "top3"
    assert all(doc for _, doc in options.values())
    assert build(DGMSelector, {"midpoint": 0.5}).midpoint == 0.5
    assert build(DGMSelector, {"midpoint": "top5", "lambda_": 4}).midpoint == "top5"
    for bad in ({"midpoint": "best"}, {"midpoint": "top0"}, {"lambda_": -1.0}):
        with pytest.raises(ConfigError):
            build(DGMSelector, bad)
    with pytest.raises(ConfigError, match="unknown selector"):
        selector_options("nope")


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(8 * 512, 20 * 512), st.integers(1, 2),
       st.sampled_from(["dense", "sparse", "zero_tail", "zero_blocks"]))
def test_blockwise_draw_equals_the_plain_inverse_cdf(seed, n, draws, shape) -> None:
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 4, n).astype(float)  # integer weights: every partial sum is exact
    if shape == "sparse":
        w[rng.random(n) < 0.995] = 0.0
    elif shape == "zero_tail":
        w[-rng.integers(1, 1200):] = 0.0
    elif shape == "zero_blocks":
        w[512:2048] = 0.0
    if not w.any():
        w[rng.integers(n)] = 1.0
    u = np.append(rng.random(draws - 1), [np.nextafter(1.0, 0.0)])
    cdf = np.cumsum(w)
    last = int(np.flatnonzero(w)[-1])
    plain = np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), last)
    got = weighted_draw(w, u)
    assert got.tolist() == plain.tolist()
    assert (w[got] > 0).all()
