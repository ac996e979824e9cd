"""What ``evolve status`` and the end of a run say of the best candidate's gain over the seed
on validation: beyond noise, within noise, the seed is best, nothing validated, few examples
in common."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from archive import ExampleScore, SplitScore
from evolve._report import children_report, format_gain, format_status, summary
from tests.evolve.selection.sel_support import candidate, index_of

#: the line's shape when there is a comparison
GAIN_LINE = re.compile(
    r"gain over the seed on validation: [+-]\d\.\d{3}(?: \[95% interval [+-]\d\.\d{3} to "
    r"[+-]\d\.\d{3}\])? \((?P<won>\d+) won, (?P<lost>\d+) lost, (?P<tied>\d+) tied of "
    r"(?P<n>\d+)(?:; \d+ scored for only one left out)?; sign test p (?:= [\d.]+|< 0\.001)\): "
    r"(?:beyond noise|within noise(?: - this may be luck)?)")


def scored(cid: int, train: float, validation: list[float] | None = None, first: int = 0):
    c = candidate(cid, train, parents=() if cid == 1 else (1,))
    if validation is not None:
        examples = tuple(ExampleScore(f"arithmetic/validation/{first + i}", v)
                         for i, v in enumerate(validation))
        c = replace(c, scores={**c.scores, "validation": SplitScore(
            "validation", sum(validation) / len(validation), examples)})
    return replace(c, slot=cid - 1)


def status_text(index) -> str:
    data = {"name": "r", "directory": "/d", "state": "finished", "stop_reason": None,
            "candidates": 3, "counts": {"evaluated": 3},
            "llm": {"calls": 0, "tokens": 0, "cache_hits": 0},
            "children": children_report(index), **summary(index)}
    json.dumps(data)  # ``evolve status --json`` prints it
    return format_status(data)


SEED = [0.0] * 23 + [1.0] * 7  # 0.233 on 30


def test_a_gain_beyond_noise():
    best = [1.0] * 5 + [0.0] * 18 + [1.0] * 7  # 0.400: 5 won, none lost
    result = summary(index_of(scored(1, 0.2, SEED), scored(2, 0.5, best), scored(3, 0.9)))
    assert result["best"]["id"] == 2
    gain = result["gain"]
    assert {k: gain[k] for k in ("split", "examples", "won", "lost", "tied", "p_value",
                                 "verdict")} == {
        "split": "validation", "examples": 30, "won": 5, "lost": 0, "tied": 25,
        "p_value": 0.03125, "verdict": "beyond noise"}
    assert abs(gain["mean_difference"] - 1 / 6) < 1e-12
    line = format_gain(gain, result["best_by"])
    assert line == ("gain over the seed on validation: +0.167 (5 won, 0 lost, 25 tied of 30; "
                    "sign test p = 0.031): beyond noise")
    assert GAIN_LINE.fullmatch(line)
    text = status_text(index_of(scored(1, 0.2, SEED), scored(2, 0.5, best)))
    assert text.splitlines()[-2].startswith("best: #2") and text.splitlines()[-1] == line


def test_a_gain_within_noise_says_it_may_be_luck():
    best = [1.0] * 3 + SEED[3:29] + [0.0]  # 0.300: 3 won, 1 lost
    result = summary(index_of(scored(1, 0.2, SEED), scored(2, 0.5, best)))
    gain = result["gain"]
    assert (gain["won"], gain["lost"], gain["tied"], gain["verdict"]) == (
        3, 1, 26, "within noise")
    line = format_gain(gain, result["best_by"])
    assert line == ("gain over the seed on validation: +0.067 (3 won, 1 lost, 26 tied of 30; "
                    "sign test p = 0.31): within noise - this may be luck")
    assert GAIN_LINE.fullmatch(line)


def test_a_best_that_ties_the_seed_on_validation_is_within_noise_without_talk_of_luck():
    # chosen over the seed by its training score, the tie-breaker
    result = summary(index_of(scored(1, 0.2, SEED), scored(2, 0.9, SEED)))
    assert result["best"]["id"] == 2
    line = format_gain(result["gain"], result["best_by"])
    assert line == ("gain over the seed on validation: +0.000 (0 won, 0 lost, 30 tied of 30; "
                    "sign test p = 1.0): within noise")
    assert GAIN_LINE.fullmatch(line)


def test_when_the_seed_is_best_it_says_so():
    result = summary(index_of(scored(1, 0.2, SEED), scored(2, 0.9, [0.0] * 30)))
    assert (result["best"]["id"], result["best_by"]) == (1, "validation")
    assert result["gain"]["verdict"] == "best is the seed"
    assert (result["gain"]["tied"], result["gain"]["p_value"]) == (30, 1.0)
    assert status_text(index_of(scored(1, 0.2, SEED), scored(2, 0.9, [0.0] * 30))).endswith(
        "\ngain over the seed: none, the best is the seed")


def test_with_nothing_but_the_seed_validated_no_comparison_is_possible():
    index = index_of(scored(1, 0.2, SEED), scored(2, 0.9), scored(3, 0.5))
    result = summary(index)
    assert (result["best"]["id"], result["best_by"]) == (2, "train")
    assert (result["gain"]["examples"], result["gain"]["verdict"]) == (0, "not comparable")
    assert status_text(index).endswith(
        "\ngain over the seed: no validation comparison is possible, the best was chosen by "
        "train score (no child was validated)")


def test_only_examples_scored_for_both_count_and_the_line_says_how_many():
    # e.g. fitness.validation_size lowered on resume: the child saw 10 of the seed's 30
    seed = scored(1, 0.2, SEED)
    best = scored(2, 0.5, [1.0] * 10, first=20)  # seed's 20..29: 3 wrong, 7 right
    result = summary(index_of(seed, best))
    gain = result["gain"]
    assert (gain["examples"], gain["unmatched"], gain["won"], gain["tied"]) == (10, 20, 3, 7)
    line = format_gain(gain, result["best_by"])
    assert "(3 won, 0 lost, 7 tied of 10; 20 scored for only one left out; " in line
    assert line.endswith("p = 0.12): within noise - this may be luck")
    assert GAIN_LINE.fullmatch(line)


def test_no_common_example_is_not_comparable():
    result = summary(index_of(scored(1, 0.2, SEED), scored(2, 0.5, [1.0] * 5, first=100)))
    assert result["gain"]["verdict"] == "not comparable"
    assert format_gain(result["gain"], result["best_by"]) == (
        "gain over the seed on validation: not comparable, no example was scored for both")


def test_partial_scores_show_the_bootstrap_interval():
    seed = scored(1, 0.2, [0.2, 0.4, 0.1, 0.5, 0.3, 0.2, 0.6, 0.1])
    best = scored(2, 0.5, [0.6, 0.5, 0.4, 0.5, 0.7, 0.3, 0.9, 0.4])
    result = summary(index_of(seed, best))
    low, high = result["gain"]["interval"]
    line = format_gain(result["gain"], result["best_by"])
    assert f"[95% interval {low:+.3f} to {high:+.3f}]" in line and 0 < low < high
    assert "(7 won, 0 lost, 1 tied of 8; sign test p = 0.0078): beyond noise" in line
    assert GAIN_LINE.fullmatch(line)


def test_an_empty_archive_has_no_gain():
    assert summary(index_of())["gain"] is None
