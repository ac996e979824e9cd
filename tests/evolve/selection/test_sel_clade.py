"""HGM's clade Thompson sampling: the clade counts equal a plain recount from the lineage
(first parents; also when kept in step with a growing archive), and parents follow the
posteriors."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve._errors import ConfigError, SelectionError
from evolve._schema import build, options_of
from evolve.selection._clade import CladeSelector

from .sel_support import candidate, index_of


# -- the oracle: a recount written plainly ----------------------------------------------
def recount(candidates) -> dict[int, tuple[int, int]]:
    by_id = {c.id: c for c in candidates}

    def fitness(cid):
        c = by_id.get(cid)
        if c is None or c.status is not Status.EVALUATED or "train" not in c.scores:
            return None
        return c.scores["train"].mean

    def result(c):  # "success", "failure" or None
        if not c.parent_ids or c.status is Status.PENDING:
            return None
        if c.status in (Status.FAILED, Status.INVALID):
            return "failure"
        mine, parents = fitness(c.id), fitness(c.parent_ids[0])
        if mine is None:
            return None
        return "success" if parents is None or mine >= parents else "failure"

    def clade(root):  # root and every descendant, through first parents
        members, todo = set(), [root]
        while todo:
            cid = todo.pop()
            if cid not in members:
                members.add(cid)
                todo.extend(c.id for c in candidates if c.parent_ids[:1] == (cid,))
        return members

    counts = {}
    for c in candidates:
        results = [result(by_id[m]) for m in clade(c.id)]
        counts[c.id] = (results.count("success"), results.count("failure"))
    return counts


# -- random lineages with merges --------------------------------------------------------
FITNESS = [0.0, 0.25, 0.5, 0.5, 0.75, 1.0]
STATUSES = [Status.EVALUATED] * 4 + [Status.PENDING, Status.FAILED, Status.INVALID]


@st.composite
def node(draw, cid: int, earlier: list[int]):
    """A candidate with 0 (a founder), 1 or 2 parents among ``earlier`` ids."""
    k = draw(st.sampled_from([0, 1, 1, 1, 2])) if earlier else 0
    parents = tuple(draw(st.sampled_from(earlier)) for _ in range(k))
    status = draw(st.sampled_from(STATUSES))
    fit = draw(st.sampled_from(FITNESS)) if status is Status.EVALUATED else None
    return candidate(cid, fit, status=status, parents=parents)


@st.composite
def forests(draw, size: int, first_id: int = 1, earlier: tuple[int, ...] = ()):
    made, ids = [], list(earlier)
    for cid in range(first_id, first_id + size):
        made.append(draw(node(cid, ids)))
        ids.append(cid)
    return made


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 30).flatmap(forests))
def test_clade_counts_equal_a_recount(members) -> None:
    index = index_of(*members)
    assert CladeSelector().clade_counts(index) == recount(members)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20).flatmap(forests), st.randoms(use_true_random=False))
def test_recount_without_ids_in_creation_order(members, random) -> None:
    """Ids relabelled at random, so that parents may have higher ids than children."""
    ids = [c.id for c in members]
    new = dict(zip(ids, random.sample(ids, len(ids)), strict=True))
    members = [dataclasses.replace(c, id=new[c.id], slot=new[c.id],
                                   parent_ids=tuple(new[p] for p in c.parent_ids))
               for c in members]
    index = index_of(*members)
    assert CladeSelector().clade_counts(index) == recount(members)


def finished(index, data):
    """A pending candidate of ``index`` turned evaluated, failed or invalid (or None)."""
    pending = index.candidates(status=Status.PENDING)
    if not pending:
        return None
    c = data.draw(st.sampled_from(pending))
    status = data.draw(st.sampled_from([Status.EVALUATED, Status.FAILED, Status.INVALID]))
    fit = data.draw(st.sampled_from(FITNESS)) if status is Status.EVALUATED else None
    return candidate(c.id, fit, status=status, parents=c.parent_ids)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 20), st.lists(st.integers(1, 8), min_size=1, max_size=6), st.data())
def test_kept_counts_follow_a_growing_archive(start, rounds, data) -> None:
    """New children (merges too) and finished pending candidates, whose children's outcomes
    then change, are published between selections: the kept counts are a recount's, and
    the draws those of a new selector."""
    index = index_of(*data.draw(forests(start)))
    kept = CladeSelector()
    for number, size in enumerate(rounds):
        known = tuple(c.id for c in index.candidates())
        for c in data.draw(forests(size, index.max_id() + 1, known)):
            index.publish(c)
            if data.draw(st.booleans()):
                done = finished(index, data)
                if done is not None:
                    index.publish(done)
        assert kept.clade_counts(index) == recount(index.candidates())
        fresh = CladeSelector()
        fresh.clade_counts(index)
        # the sampler's groups (ids in order) and slot totals are a fresh selector's too
        assert {k: v for k, v in kept._kept.members.items() if v} == fresh._kept.members
        assert (kept._kept.slots == fresh._kept.slots).all()
        if len(index.population_ids()):
            a = kept.select(index, np.random.default_rng(number), 3)
            b = CladeSelector().select(index, np.random.default_rng(number), 3)
            assert a == b


def test_only_the_new_candidates_ancestry_is_counted_again(monkeypatch) -> None:
    index = index_of(candidate(1, 0.5), candidate(2, 0.6, parents=(1,)),
                     candidate(3, 0.4, parents=(2,)), candidate(4, 0.7, parents=(1,)))
    selector = CladeSelector()
    selector.select(index, np.random.default_rng(0), 1)
    recounts = []
    original = type(selector._kept)._recount

    def counting(self, view):
        recounts.append(view)
        return original(self, view)

    monkeypatch.setattr(type(selector._kept), "_recount", counting)
    index.publish(candidate(5, None, status=Status.PENDING, parents=(3, 4)))
    # below 3: a failure for 5, 3, 2 and 1 (not for 4: a merge counts in the clade of
    # its first parent only)
    index.publish(candidate(5, 0.1, parents=(3, 4)))
    selector.select(index, np.random.default_rng(1), 1)
    assert recounts == []
    assert selector.clade_counts(index) == {1: (2, 2), 2: (1, 2), 3: (0, 2), 4: (1, 0),
                                            5: (0, 1)}
    # a parent published after its child: counted again from scratch, still right
    index.publish(candidate(7, 0.9, parents=(6,)))
    index.publish(candidate(6, 0.8, parents=(5,)))
    assert selector.clade_counts(index) == recount(index.candidates())
    assert len(recounts) == 1


def test_a_finished_parent_judges_its_children_again() -> None:
    index = index_of(candidate(1, 0.5), candidate(2, None, status=Status.PENDING, parents=(1,)))
    index.publish(candidate(3, 0.3, parents=(2,)))  # its parent has no score: a success
    selector = CladeSelector()
    assert selector.clade_counts(index) == {1: (1, 0), 2: (1, 0), 3: (1, 0)}
    index.publish(candidate(2, 0.6, parents=(1,)))  # now 3 is below its parent
    assert selector.clade_counts(index) == {1: (1, 1), 2: (1, 1), 3: (0, 1)}


def test_same_seed_same_selection_and_busy_parents_allowed() -> None:
    index = index_of(*(candidate(i, 0.1 * i, parents=(i - 1,) if i > 1 else ())
                       for i in range(1, 8)))
    a = CladeSelector().select(index, np.random.default_rng(11), 40, busy=frozenset({1, 2}))
    b = CladeSelector().select(index, np.random.default_rng(11), 40)
    c = CladeSelector().select(index, np.random.default_rng(12), 40)
    assert a == b and a != c
    assert all(s.retire == () for s in a)
    assert CladeSelector().select(index, np.random.default_rng(0), 0) == []
    many = CladeSelector().select(index, np.random.default_rng(3), 2000)
    assert {s.parent for s in many} == set(range(1, 8))


def test_nothing_evaluated_fails_clearly() -> None:
    for index in (index_of(), index_of(candidate(1, None, status=Status.PENDING),
                                       candidate(2, None, status=Status.FAILED, parents=(1,)),
                                       candidate(3, None, status=Status.INVALID))):
        with pytest.raises(SelectionError, match="no evaluated candidate"):
            CladeSelector().select(index, np.random.default_rng(0), 1)
    index = index_of(candidate(1, 0.2, retired_by=9), candidate(2, None, status=Status.FAILED,
                                                                 parents=(1,)))
    picks = CladeSelector().select(index, np.random.default_rng(0), 5)
    assert {s.parent for s in picks} == {1}  # retired but evaluated: HGM keeps everyone


def beta_cdf(x: np.ndarray, a: int, b: int) -> np.ndarray:
    """The Beta(a, b) CDF for whole a, b: P(Binomial(a + b - 1, x) >= a)."""
    n = a + b - 1
    return sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))


def test_a_productive_clade_is_preferred_as_thompson_sampling_says() -> None:
    """Founders 1 and 2 score alike; 1's ten children all improve on it, 2's ten all fall
    below it. The frequencies match P(argmax) integrated from the Beta posteriors."""
    rows = [candidate(1, 0.5), candidate(2, 0.5)]
    rows += [candidate(i, 0.6, parents=(1,)) for i in range(3, 13)]
    rows += [candidate(i, 0.4, parents=(2,)) for i in range(13, 23)]
    index = index_of(*rows)
    selector = CladeSelector()
    counts = selector.clade_counts(index)
    assert counts[1] == (10, 0) and counts[2] == (0, 10)
    assert counts[3] == (1, 0) and counts[13] == (0, 1)
    # P(i wins) = ∫ pdf_i(x) Π_{j≠i} cdf_j(x) dx, on a fine grid (error far below 1e-4)
    x = np.linspace(0.0, 1.0, 200_001)
    params = {i: (1 + s, 1 + f) for i, (s, f) in counts.items()}
    cdfs = {i: beta_cdf(x, a, b) for i, (a, b) in params.items()}
    everyone = np.prod(np.array(list(cdfs.values())), axis=0)
    want = {}
    for i, (a, b) in params.items():
        pdf = x ** (a - 1) * (1 - x) ** (b - 1) / (math.gamma(a) * math.gamma(b)
                                                    / math.gamma(a + b))
        with np.errstate(divide="ignore", invalid="ignore"):
            others = np.where(cdfs[i] > 0, everyone / cdfs[i], 0.0)
        want[i] = float(np.trapezoid(pdf * others, x))
    assert sum(want.values()) == pytest.approx(1.0, abs=1e-4)
    n = 100_000
    got = Counter(s.parent for s in selector.select(index, np.random.default_rng(2), n))
    for i, p in want.items():
        # 6 standard deviations (+ the integration error): no seed makes this flaky
        assert got[i] / n == pytest.approx(p, abs=6 * math.sqrt(p * (1 - p) / n) + 1e-4)
    productive = sum(got[i] for i in range(1, 13)) / n
    assert productive > 0.95
    assert got[1] > 4 * got[3]  # the clade's root beats any single child of it


def test_temperature_narrows_the_posteriors() -> None:
    """1 has one success (2) and two failures (invalid 3, 4): Beta(2, 3) against 2's
    Beta(2, 1). 2 wins with probability 0.8; a low temperature makes that near certain
    (0.9995 at 0.05), a high one brings it towards a coin toss (0.705 at 10)."""
    index = index_of(candidate(1, 0.5), candidate(2, 0.6, parents=(1,)),
                     candidate(3, None, status=Status.INVALID, parents=(1,)),
                     candidate(4, None, status=Status.FAILED, parents=(1,)))
    assert CladeSelector().clade_counts(index) == {1: (1, 2), 2: (1, 0), 3: (0, 1),
                                                   4: (0, 1)}
    n = 20_000
    share = {}
    for t in (0.05, 1.0, 10.0):
        picks = CladeSelector(temperature=t).select(index, np.random.default_rng(4), n)
        share[t] = sum(s.parent == 2 for s in picks) / n
    # P(Beta(2, 1) > Beta(2, 3)) = ∫ 12x(1 − x)² (1 − x²) dx = 1 − 12 B(4, 3) = 0.8
    sd = math.sqrt(0.25 / n)  # the largest standard deviation of a share
    assert share[1.0] == pytest.approx(0.8, abs=6 * sd)
    assert share[0.05] > 0.99 and share[10.0] < 0.705 + 6 * sd < 0.8 - 6 * sd


def test_options_and_validation() -> None:
    options = options_of(CladeSelector)
    assert {k: v[0] for k, v in options.items()} == {
        "prior_successes": 1.0, "prior_failures": 1.0, "temperature": 1.0}
    assert all(text for _, text in options.values())
    assert build(CladeSelector, {"temperature": 0.5, "prior_failures": 2}) == \
        CladeSelector(temperature=0.5, prior_failures=2.0)
    for bad in ({"temperature": 0.0}, {"prior_successes": -1.0}, {"prior": 1}):
        with pytest.raises(ConfigError):
            build(CladeSelector, bad)
    assert CladeSelector.name == "clade"


def test_counts_survive_a_large_chain_with_merges() -> None:
    """A long lineage (deep walks) with a merge every 50 candidates, counted in rounds."""
    rng = np.random.default_rng(0)
    index = index_of(candidate(1, 0.5))
    selector = CladeSelector()
    for cid in range(2, 800):
        parents = (cid - 1,) if cid % 50 else (cid - 1, int(rng.integers(1, cid - 1)))
        index.publish(candidate(cid, float(rng.random()), parents=parents))
        if cid % 20 == 0:  # few changes: counted incrementally
            selector.select(index, np.random.default_rng(cid), 1)
    want = recount_fast(index.candidates())
    assert selector.clade_counts(index) == want


def recount_fast(candidates) -> dict[int, tuple[int, int]]:
    """``recount`` with the children found through a map (the same definition)."""
    children: dict[int, list[int]] = {}
    for c in candidates:
        if c.parent_ids:
            children.setdefault(c.parent_ids[0], []).append(c.id)
    fit = {c.id: c.scores["train"].mean for c in candidates if c.status is Status.EVALUATED}
    result = {c.id: (None if not c.parent_ids else
                     "success" if fit[c.id] >= fit[c.parent_ids[0]] else "failure")
              for c in candidates}
    counts = {}
    for c in candidates:
        members, todo = set(), [c.id]
        while todo:
            m = todo.pop()
            if m not in members:
                members.add(m)
                todo.extend(children.get(m, ()))
        outcomes = [result[m] for m in members]
        counts[c.id] = (outcomes.count("success"), outcomes.count("failure"))
    return counts


def test_a_republished_candidate_changes_nothing() -> None:
    index = index_of(candidate(1, 0.5), candidate(2, 0.7, parents=(1,)))
    selector = CladeSelector()
    before = selector.clade_counts(index)
    index.publish(dataclasses.replace(index.get(2)))
    index.publish(candidate(2, 0.7, parents=(1,), retired_by=5))
    assert selector.clade_counts(index) == before == {1: (1, 0), 2: (1, 0)}


# -- the sampler: the same choices as one Beta draw per candidate ------------------------
def family(first_id: int, successes: int, failures: int, *, failed_below: bool = False,
           grandchild_fails: bool = False) -> list:
    """A founder scoring 0.5 with ``successes`` children above it and ``failures`` below
    (evaluated below it, or with ``failed_below`` status failed); with
    ``grandchild_fails`` every successful child has one failed child of its own."""
    rows, cid = [candidate(first_id, 0.5)], first_id + 1
    for _ in range(successes):
        rows.append(candidate(cid, 0.6, parents=(first_id,)))
        if grandchild_fails:
            rows.append(candidate(cid + 1, None, status=Status.FAILED, parents=(cid,)))
            cid += 1
        cid += 1
    for _ in range(failures):
        rows.append(candidate(cid, None, status=Status.FAILED, parents=(first_id,))
                    if failed_below else candidate(cid, 0.4, parents=(first_id,)))
        cid += 1
    return rows


def exact_shares(params: list[tuple[int, int]]) -> Counter:
    """{(a, b): P(the winner's posterior is Beta(a, b))} for one Beta(a, b) draw per entry
    of ``params`` (whole numbers), integrated on a fine grid."""
    x = np.linspace(0.0, 1.0, 400_001)
    classes = Counter(params)
    cdfs = {p: beta_cdf(x, *p) for p in classes}
    shares = Counter()
    for (a, b), m in classes.items():
        pdf = x ** (a - 1) * (1 - x) ** (b - 1) * math.exp(
            math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
        others = np.ones_like(x)
        for q, k in classes.items():
            others *= cdfs[q] ** (k - 1 if q == (a, b) else k)
        shares[a, b] = m * float(np.trapezoid(pdf * others, x))
    return shares


SCENARIOS = {
    # many candidates with b = 1 (the usual archive): Beta(7, 1), (13, 3), (2, 6), (1, 1),
    # (26, 7), 44 x (2, 1) and 13 x (1, 2)
    "leads": [*family(1, 6, 0), *family(10, 12, 2), *family(30, 1, 5), *family(40, 0, 0),
              *family(50, 25, 6, failed_below=True)],
    # one Beta(1, 1) against strong candidates with b > 1: (4, 4), (9, 9), (31, 41),
    # Beta(2, 2) children, a chain (3, 2), (3, 2), (2, 2)
    "strong rest": [candidate(1, 0.5), *family(2, 3, 0, grandchild_fails=True),
                    *family(20, 8, 0, grandchild_fails=True),
                    *family(40, 30, 10, failed_below=True, grandchild_fails=True),
                    candidate(200, 0.5), candidate(201, 0.6, parents=(200,)),
                    candidate(202, 0.7, parents=(201,)),
                    candidate(203, None, status=Status.FAILED, parents=(202,))],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("setting", ["default", "one by one", "prior_failures 2"])
def test_the_parent_follows_the_thompson_distribution(scenario, setting, monkeypatch) -> None:
    """The sampler's parents, as a share per posterior, against P(argmax) integrated from
    the posteriors; also when the candidates with b > 1 are drawn one by one (every
    selection, as when many hits are expected) and when no candidate has b = 1."""
    index = index_of(*SCENARIOS[scenario])
    if setting == "one by one":
        monkeypatch.setattr("evolve.selection._clade._DEALS", 1 << 62)
        monkeypatch.setattr("evolve.selection._clade._DEAL_MIN", -1)
    selector = CladeSelector(prior_failures=2.0 if setting == "prior_failures 2" else 1.0)
    counts = selector.clade_counts(index)
    prior_b = 2 if setting == "prior_failures 2" else 1
    param = {c.id: (1 + counts[c.id][0], prior_b + counts[c.id][1])
             for c in index.candidates(status=Status.EVALUATED)}
    want = exact_shares(list(param.values()))
    assert sum(want.values()) == pytest.approx(1.0, abs=1e-4)
    n = 40_000
    got = Counter(param[s.parent] for s in selector.select(index, np.random.default_rng(5), n))
    assert set(got) <= set(want)
    for p, share in want.items():
        assert got[p] / n == pytest.approx(share, abs=6 * math.sqrt(share * (1 - share) / n)
                                           + 1e-4), p
