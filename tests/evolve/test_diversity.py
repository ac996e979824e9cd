"""The collapse monitor's metrics (``evolve/_diversity.py``): pass@k against its closed
form and against brute force, lineage counts on hand-built lineages, and the collapse
signature on constructed histories."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import ExampleScore, SplitScore, Status
from evolve._diversity import (
    collapse_signature,
    depth,
    live_clades,
    mean_pairwise_distance,
    most_recent_common_ancestor,
    pass_at_k,
    population_pass_at_k,
    snapshot,
    solved_set_entropy,
    top_living,
)
from evolve._text import prompt_text as genome_text
from evolve._text import text_distance
from tests.evolve.selection.sel_support import candidate, index_of


def node(cid: int, parents: tuple[int, ...] = (), *, fitness: float = 0.5,
         retired_by: int | None = None, status: Status = Status.EVALUATED,
         probe: dict[str, float] | None = None, prompt: str | None = None):
    """A prompt candidate with a training score, optional probe scores and prompt."""
    c = candidate(cid, fitness, status=status, parents=parents, retired_by=retired_by)
    if probe is not None:
        examples = tuple(ExampleScore(e, s) for e, s in probe.items())
        mean = sum(probe.values()) / len(probe) if probe else 0.0
        c = replace(c, scores={**c.scores, "probe": SplitScore("probe", mean, examples)})
    if prompt is not None:
        c = replace(c, genome={**c.genome, "task_prompts": [prompt]})
    return c


# -- pass@k -------------------------------------------------------------------------------
@st.composite
def n_c_k(draw):
    n = draw(st.integers(1, 400))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


@given(n_c_k())
def test_pass_at_k_is_the_closed_form(nck):
    n, c, k = nck
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-9, abs=1e-12)


def test_pass_at_k_edges_and_bad_arguments():
    assert pass_at_k(10, 0, 3) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 8, 3) == 1.0  # n - c < k: every draw of 3 holds a pass
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert 0 < pass_at_k(10**6, 1, 1) == pytest.approx(1e-6, rel=1e-9)  # no cancellation
    for n, c, k in ((5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


@st.composite
def populations(draw):
    """Candidates scored on random subsets of a few examples, with scores in [0, 1]."""
    examples = [f"e{i}" for i in range(draw(st.integers(1, 4)))]
    members = []
    for cid in range(1, draw(st.integers(1, 6)) + 1):
        seen = draw(st.lists(st.sampled_from(examples), unique=True))
        scores = {e: draw(st.sampled_from([0.0, 0.5, 1.0])) for e in seen}
        members.append(node(cid, probe=scores))
    return members


def brute_force(members, ks, threshold):
    """Mean over examples of the share of k-subsets of the candidates scored on the
    example that hold a pass (examples seen by fewer than k candidates left out)."""
    examples = {e.example_id for c in members for e in c.scores["probe"].examples}
    result = {}
    for k in ks:
        shares = []
        for example in sorted(examples):
            passed = [s.score >= threshold for c in members
                      for s in c.scores["probe"].examples if s.example_id == example]
            if len(passed) >= k:
                subsets = list(itertools.combinations(passed, k))
                shares.append(sum(any(s) for s in subsets) / len(subsets))
        result[k] = sum(shares) / len(shares) if shares else None
    return result


@settings(max_examples=200)
@given(populations(), st.sampled_from([0.5, 1.0]))
def test_population_pass_at_k_is_the_brute_force_average(members, threshold):
    ks = (1, 2, 3, 4, 6)
    got = population_pass_at_k(members, "probe", ks, threshold)
    want = brute_force(members, ks, threshold)
    assert got.keys() == want.keys()
    for k in ks:
        assert (got[k] is None) == (want[k] is None)
        if want[k] is not None:
            assert got[k] == pytest.approx(want[k], abs=1e-12)


def test_population_pass_at_k_ignores_candidates_without_the_split():
    members = [node(1, probe={"a": 1.0, "b": 0.0}), node(2, probe={"a": 0.0, "b": 0.0}),
               node(3)]  # no probe scores: not counted in n
    assert population_pass_at_k(members, "probe", (1, 2, 3)) == {1: 0.25, 2: 0.5, 3: None}


# -- lineage ------------------------------------------------------------------------------
def lineage():
    """Founders 1, 2, 3 (retired); 4 <- 1, 5 <- 4, 6 <- 2 (retired), 7 <- (5, 6) merge,
    8 <- 3 (retired), 9 <- 1 (failed). Living: 5 and 7, both descend from 1 and 7 from 2."""
    return index_of(
        node(1, retired_by=4), node(2, retired_by=6), node(3, retired_by=8),
        node(4, (1,), retired_by=5), node(5, (4,), fitness=0.6),
        node(6, (2,), retired_by=7), node(7, (5, 6), fitness=0.9),
        node(8, (3,), retired_by=9), node(9, (1,), status=Status.FAILED))


def test_live_clades_follow_every_parent_edge():
    index = lineage()
    assert live_clades(index) == 2  # founders 1 and 2 (through the merge); 3's line died
    index.publish(node(10, (3,)))  # a living child of founder 3
    assert live_clades(index) == 3


def test_a_living_founder_and_a_candidate_with_a_parent_outside_the_archive_are_clades():
    index = index_of(node(1), node(2, retired_by=3), node(3, (2,)), node(4, (99,)))
    assert live_clades(index) == 3  # 1 itself, 2 through 3, and 4 (its parent was not copied)


def test_depth_counts_first_parent_steps():
    index = lineage()
    assert [depth(index, i) for i in (1, 4, 5, 6, 7)] == [0, 1, 2, 1, 3]


def test_most_recent_common_ancestor():
    index = lineage()
    assert most_recent_common_ancestor(index, [5, 7]) == 5  # 7 descends from 5
    assert most_recent_common_ancestor(index, [6, 7]) == 6  # through the merge's 2nd parent
    assert most_recent_common_ancestor(index, [4, 9]) == 1
    assert most_recent_common_ancestor(index, [7]) == 7
    assert most_recent_common_ancestor(index, [5, 6]) is None  # founders 1 and 2
    assert most_recent_common_ancestor(index, [8, 9]) is None
    assert most_recent_common_ancestor(index, []) is None


def test_top_living_is_by_training_fitness_then_id():
    index = lineage()
    index.publish(node(10, (3,), fitness=0.9))
    assert top_living(index, 2) == [7, 10]
    assert top_living(index, 5) == [7, 10, 5]


# -- genomes and solved sets ------------------------------------------------------------------
def test_text_distance():
    assert text_distance("abcdef", "abcdef") == 0.0
    assert text_distance("", "") == 0.0
    assert text_distance("aaaa", "bbbb") == 1.0
    assert text_distance("abcd", "abce") == pytest.approx(1 - 1 / 3)  # abc shared of 3
    assert text_distance("ab", "ab") == 0.0 and text_distance("ab", "") == 1.0


def test_mean_pairwise_distance_all_pairs_and_sampled():
    rng = np.random.default_rng(0)
    assert mean_pairwise_distance(["x y z"], rng) == (None, 0)
    assert mean_pairwise_distance(["same", "same", "same"], rng) == (0.0, 3)
    assert mean_pairwise_distance(["aaaa", "bbbb", "aaaa"], rng) == (pytest.approx(2 / 3), 3)
    texts = ["aaaa", "bbbb"] * 50  # 4950 pairs, half of them at distance 1
    mean, pairs = mean_pairwise_distance(texts, np.random.default_rng(1), max_pairs=400)
    assert pairs == 400 and 0.4 < mean < 0.62
    again = mean_pairwise_distance(texts, np.random.default_rng(1), max_pairs=400)
    assert again == (mean, pairs)  # the rng alone decides the sample


def test_genome_text_of_prompt_and_code_genomes():
    genome = {"task_prompts": ["A", "B"], "mutation_prompt": "m", "context": ["Q: 1"]}
    assert genome_text(genome) == "A\nB\nQ: 1"
    assert genome_text({"commit": "abc", "mutation_prompt": "m"}) is None


def test_solved_set_entropy():
    members = [node(1, probe={"a": 1.0, "b": 0.0}), node(2, probe={"a": 1.0, "b": 0.0}),
               node(3, probe={"a": 0.0, "b": 1.0}), node(4, probe={"a": 1.0, "b": 1.0}),
               node(5)]  # not on the probe split: left out
    assert solved_set_entropy(members, "probe") == pytest.approx(1.5)  # 1/2, 1/4, 1/4
    assert solved_set_entropy(members[:2], "probe") == 0.0
    assert solved_set_entropy(members, "probe", threshold=0.0) == 0.0  # all solve both
    assert solved_set_entropy([node(5)], "probe") is None


# -- snapshots and the collapse signature -------------------------------------------------------
def test_snapshot_is_json_and_reads_the_living_population():
    index = index_of(
        node(1, retired_by=3, probe={"a": 1.0, "b": 1.0}, prompt="dead"),
        node(2, probe={"a": 1.0, "b": 0.0}, prompt="Think step by step."),
        node(3, (1,), fitness=0.8, probe={"a": 0.0, "b": 1.0}, prompt="Think in steps."),
        node(4, (2,), fitness=0.7, probe={"a": 1.0, "b": 0.0}, prompt="Answer now."))
    snap = snapshot(index, generation=2, candidates=4, ks=(1, 2, 4),
                    rng=np.random.default_rng(0), top=2)
    assert json.loads(json.dumps(snap)) == snap
    assert snap["population"] == 3 and snap["probe_examples"] == 2
    assert snap["pass_at_k"] == {"1": pytest.approx(0.5), "2": pytest.approx(5 / 6), "4": None}
    assert snap["live_clades"] == 2
    assert (snap["mrca"], snap["mrca_depth"]) == (None, None)  # 3 and 4: founders 1 and 2
    assert snap["distance_pairs"] == 3 and 0 < snap["mean_distance"] < 1
    assert snap["solved_entropy"] == pytest.approx(-(2 / 3) * math.log2(2 / 3)
                                                   - (1 / 3) * math.log2(1 / 3))
    assert (snap["generation"], snap["candidates"], snap["top"]) == (2, 4, 2)


def history(k1, k8, k2=None):
    return [{"generation": g, "pass_at_k": {"1": a, "2": k2[g] if k2 else None, "8": b}}
            for g, (a, b) in enumerate(zip(k1, k8, strict=True))]


def test_collapse_signature_fires_when_pass_at_1_rises_and_the_largest_k_falls():
    h = history([0.2, 0.25, 0.3, 0.35, 0.4], [0.9, 0.85, 0.8, 0.7, 0.6])
    warning = collapse_signature(json.loads(json.dumps(h)), window=5)
    assert warning is not None and "\n" not in warning
    assert "pass@1 rose" in warning and "pass@8 fell" in warning and "0-4" in warning


def test_collapse_signature_is_quiet_otherwise():
    rising = [0.2, 0.25, 0.3, 0.35, 0.4]
    assert collapse_signature(history(rising, [0.6, 0.7, 0.8, 0.85, 0.9]), 5) is None
    assert collapse_signature(history(rising, [0.9, 0.9, 0.9, 0.9, 0.9]), 5) is None
    assert collapse_signature(history([0.3] * 5, [0.9, 0.8, 0.7, 0.6, 0.5]), 5) is None
    falling = history(rising, [0.9, 0.85, 0.8, 0.7, 0.6])
    assert collapse_signature(falling[:4], window=5) is None  # too short for the window
    assert collapse_signature(falling, 5, tolerance=0.05) is None  # slopes within 0.05
    # only the window counts: an earlier recovery does not hide a recent collapse
    earlier = history([0.5, 0.1], [0.1, 0.9])
    assert collapse_signature(earlier + falling, window=5) is not None
    with pytest.raises(ValueError):
        collapse_signature(falling, window=1)


def test_collapse_signature_uses_the_largest_k_with_values_throughout():
    h = history([0.2, 0.3, 0.4], [None, 0.5, 0.4], k2=[0.8, 0.7, 0.6])
    assert "pass@2 fell" in collapse_signature(h, window=3)


def test_the_status_reports_the_first_reading_that_showed_a_collapse():
    from evolve._report import collapse_status

    def reading(g, k1, k8):
        return {"generation": g, "pass_at_k": {"1": k1, "8": k8}, "live_clades": 1,
                "mean_distance": 0.1, "solved_entropy": 0.0}
    collapsing = [reading(g, 0.2 + 0.1 * g, 0.9 - 0.1 * g) for g in range(3)]
    recovering = [reading(g, 0.5, 0.6 + 0.1 * (g - 3)) for g in range(3, 6)]
    status = collapse_status(collapsing + recovering, window=3)
    assert status["first_warning"] == 2 and status["warning"] is None  # it came and went
    assert collapse_status(recovering, window=3)["first_warning"] is None
    assert collapse_status([], window=3) is None
