"""The paired comparison of two candidates' per-example scores: the sign test against
hand-computed values and its properties, matching by example id, the verdicts, and the
bootstrap interval for partial scores."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from archive import ExampleScore, SplitScore
from evolve._significance import (
    ALPHA,
    BEYOND_NOISE,
    NOT_COMPARABLE,
    WITHIN_NOISE,
    bootstrap_interval,
    compare,
    compare_scores,
    sign_test,
)
from tests.evolve.selection.sel_support import candidate

counts = st.integers(min_value=0, max_value=60)


def scores(*values: float, prefix: str = "v") -> list[ExampleScore]:
    return [ExampleScore(f"{prefix}{i}", v) for i, v in enumerate(values)]


# -- the sign test ------------------------------------------------------------------------------
@pytest.mark.parametrize(("won", "lost", "p"), [
    (5, 0, 0.03125),  # issue 14: 0.233 -> 0.400 on 30 questions, 5 won and none lost
    (2, 0, 0.25),  # 0.200 -> 0.267: two questions
    (3, 1, 5 / 16),  # C(4,3) + C(4,4) = 5 of 16
    (7, 2, 46 / 512),  # C(9,7) + C(9,8) + C(9,9) = 36 + 9 + 1
    (0, 3, 1.0),
    (1, 1, 0.75),
    (0, 0, 1.0),
    (10, 10, 0.5 + math.comb(20, 10) / 2**21),
])
def test_sign_test_matches_hand_computed_values(won, lost, p):
    assert sign_test(won, lost) == pytest.approx(p, rel=1e-12)


def test_sign_test_refuses_negative_counts():
    with pytest.raises(ValueError):
        sign_test(-1, 2)


@given(counts, counts)
def test_p_value_is_a_probability(won, lost):
    assert 0.0 < sign_test(won, lost) <= 1.0


@given(st.integers(min_value=0, max_value=200))
def test_n_wins_and_no_loss_give_half_to_the_n(n):
    assert sign_test(n, 0) == 0.5**n


@given(counts, counts)
def test_more_wins_never_raise_p_and_more_losses_never_lower_it(won, lost):
    p = sign_test(won, lost)
    assert sign_test(won + 1, lost) <= p <= sign_test(won, lost + 1)


@given(counts, counts)
def test_the_two_one_sided_p_values_overlap_by_exactly_the_observed_count(won, lost):
    # P(X >= won) + P(X >= lost) = P(X >= won) + P(X <= won) = 1 + P(X = won)
    n = won + lost
    assert sign_test(won, lost) + sign_test(lost, won) == pytest.approx(
        1 + math.comb(n, won) / 2**n, rel=1e-12)


@given(counts)
def test_equal_wins_and_losses_are_never_beyond_noise(n):
    assert sign_test(n, n) >= 0.5


# -- comparing scores ---------------------------------------------------------------------------
def test_the_issues_run_five_won_none_lost_of_thirty_is_beyond_noise():
    seed = [0.0] * 23 + [1.0] * 7  # 0.233
    best = [1.0] * 5 + [0.0] * 18 + [1.0] * 7  # 0.400
    c = compare_scores(scores(*best), scores(*seed), "validation")
    assert (c.examples, c.unmatched, c.won, c.lost, c.tied) == (30, 0, 5, 0, 25)
    assert c.mean_difference == pytest.approx(5 / 30)
    assert c.p_value == 0.03125 and c.verdict == BEYOND_NOISE and c.split == "validation"
    assert c.interval is None  # right/wrong scores: the sign test says it all


def test_two_questions_better_is_within_noise():
    seed = [1.0] * 6 + [0.0] * 24  # 0.200
    best = [1.0] * 8 + [0.0] * 22  # 0.267
    c = compare_scores(scores(*best), scores(*seed))
    assert (c.won, c.lost, c.tied, c.p_value, c.verdict) == (2, 0, 28, 0.25, WITHIN_NOISE)


def test_the_same_mean_can_hide_wins_and_losses():
    # both 0.5: two swaps and a tie; nothing to see
    c = compare_scores(scores(1, 0, 1, 0, 1), scores(0, 1, 1, 0, 1))
    assert (c.won, c.lost, c.tied, c.mean_difference, c.p_value) == (1, 1, 3, 0.0, 0.75)


def test_examples_are_matched_by_id_and_only_common_ones_count():
    a = [ExampleScore("x", 1.0), ExampleScore("y", 1.0), ExampleScore("only-a", 1.0)]
    b = [ExampleScore("y", 0.0), ExampleScore("x", 1.0), ExampleScore("only-b", 0.0),
         ExampleScore("only-b2", 0.0)]
    c = compare_scores(a, b)
    assert (c.examples, c.unmatched, c.won, c.lost, c.tied) == (2, 3, 1, 0, 1)
    assert c.mean_difference == 0.5


def test_no_common_example_is_not_comparable():
    c = compare_scores(scores(1, 1, prefix="a"), scores(0, 0, prefix="b"), "validation")
    assert (c.examples, c.unmatched, c.mean_difference, c.p_value, c.verdict) == (
        0, 4, None, 1.0, NOT_COMPARABLE)
    assert compare_scores([], []).verdict == NOT_COMPARABLE


def test_an_id_scored_twice_counts_once_with_its_mean():
    a = [ExampleScore("x", 1.0), ExampleScore("x", 0.0)]
    c = compare_scores(a, [ExampleScore("x", 0.25)])
    assert (c.examples, c.won, c.mean_difference) == (1, 1, 0.25)


def test_rounding_noise_is_a_tie():
    c = compare_scores([ExampleScore("x", 0.1 + 0.2)], [ExampleScore("x", 0.3)])
    assert (c.won, c.lost, c.tied) == (0, 0, 1)


def test_alpha_is_the_threshold():
    assert ALPHA == 0.05
    best, seed = scores(1, 1, 1, 1, 1), scores(0, 0, 0, 0, 0)  # p = 0.03125
    assert compare_scores(best, seed, alpha=0.03).verdict == WITHIN_NOISE
    assert compare_scores(best, seed, alpha=0.04).verdict == BEYOND_NOISE


def test_compare_reads_the_candidates_split_scores():
    seed = replace(candidate(1, 0.5), scores={
        "validation": SplitScore("validation", 0.0, tuple(scores(0, 0, 0, 0, 0, 0)))})
    best = replace(candidate(2, 0.5), scores={
        "validation": SplitScore("validation", 1.0, tuple(scores(1, 1, 1, 1, 1, 1)))})
    c = compare(best, seed)
    assert (c.split, c.won, c.p_value, c.verdict) == ("validation", 6, 0.5**6, BEYOND_NOISE)
    not_validated = compare(candidate(3, 0.9), seed)
    assert (not_validated.examples, not_validated.unmatched, not_validated.verdict) == (
        0, 6, NOT_COMPARABLE)
    assert compare(best, seed).to_dict()["verdict"] == BEYOND_NOISE


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
pairs = st.lists(st.tuples(unit, unit), max_size=40)
binary_pairs = st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0])),
                        max_size=40)


def split_pairs(rows):
    return scores(*(a for a, _ in rows)), scores(*(b for _, b in rows))


@given(pairs)
def test_counts_add_up_and_p_is_the_sign_tests(rows):
    c = compare_scores(*split_pairs(rows))
    assert c.won + c.lost + c.tied == c.examples == len(rows)
    assert c.p_value == sign_test(c.won, c.lost)
    assert 0.0 <= c.p_value <= 1.0
    if rows:
        assert -1.0 <= c.mean_difference <= 1.0
        assert c.mean_difference == pytest.approx(
            sum(a for a, _ in rows) / len(rows) - sum(b for _, b in rows) / len(rows), abs=1e-9)


@given(pairs)
def test_swapping_the_candidates_swaps_wins_and_losses(rows):
    a, b = split_pairs(rows)
    ab, ba = compare_scores(a, b), compare_scores(b, a)
    assert (ab.won, ab.lost, ab.tied) == (ba.lost, ba.won, ba.tied)
    if rows:
        assert ab.mean_difference == pytest.approx(-ba.mean_difference, abs=1e-12)


@given(pairs, st.randoms(use_true_random=False))
def test_the_order_of_examples_does_not_matter(rows, rnd):
    a, b = split_pairs(rows)
    shuffled = list(b)
    rnd.shuffle(shuffled)
    assert compare_scores(a, shuffled) == compare_scores(a, b)


@given(st.lists(unit, max_size=40))
def test_a_candidate_against_itself_is_all_ties_with_p_one(values):
    c = compare_scores(scores(*values), scores(*values))
    assert (c.won, c.lost, c.tied, c.p_value) == (0, 0, len(values), 1.0)
    assert c.verdict == (WITHIN_NOISE if values else NOT_COMPARABLE)


@given(binary_pairs)
def test_right_or_wrong_scores_get_no_interval(rows):
    assert compare_scores(*split_pairs(rows)).interval is None


# -- the bootstrap interval (partial scores) ----------------------------------------------------
def test_partial_scores_get_a_deterministic_interval_around_the_mean():
    best = scores(*(0.5 + 0.01 * i for i in range(20)))
    seed = scores(*(0.4 + 0.01 * i for i in range(20)))
    c = compare_scores(best, seed)
    assert c.interval == compare_scores(best, seed).interval  # a fixed seed
    low, high = c.interval
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)  # every difference is 0.1
    spread = compare_scores(scores(0.9, 0.1, 0.6, 0.5, 0.8, 0.2), scores(0.1, 0.2, 0.3, 0.5, 0.5,
                                                                          0.4))
    low, high = spread.interval
    assert low < spread.mean_difference < high
    assert spread.to_dict()["interval"] == [low, high]


@given(st.lists(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False), min_size=1,
                max_size=30))
@example([0.8, 0.8, 0.8])  # their mean rounds to 0.8000000000000002
def test_the_interval_lies_within_the_differences(diffs):
    low, high = bootstrap_interval(diffs)
    assert min(diffs) <= low <= high <= max(diffs)
    assert bootstrap_interval(diffs) == (low, high)
