"""Trusted answer extraction: the rules, round trips, and outputs that try to game them."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fitness import (
    answer_line,
    answers_match,
    extract_answer,
    normalize_text,
    parse_boolean,
    parse_number,
    parse_words,
    score_output,
)

# ------------------------------------------------------------------ answer line


def test_answer_line_takes_the_last_answer_line() -> None:
    output = "Answer: 3\nwait, let me redo this\nAnswer: 4\nthanks"
    assert answer_line(output) == "4"


def test_answer_line_accepts_markdown_and_final_answer() -> None:
    assert answer_line("so...\n**Final Answer:** 42") == "42"
    assert answer_line("The answer: 7") == "7"
    assert answer_line("ANSWER : yes") == "yes"
    assert answer_line("The answer is: bush") == "bush"
    assert answer_line("The answer is: Answer: blow golf") == "blow golf"
    assert answer_line("the answer is 5") is None  # a colon is needed


def test_answer_line_reads_the_next_line_when_the_marker_ends_its_line() -> None:
    assert answer_line("Answer:\n\n  12  \nmore") == "12"
    assert answer_line("Answer:") is None


def test_answer_line_absent() -> None:
    assert answer_line("the result is 5") is None
    assert answer_line("") is None


def test_answer_line_handles_windows_newlines() -> None:
    assert answer_line("work\r\nAnswer: 9\r\n") == "9"


@given(st.text(alphabet=st.characters(exclude_characters="\n\r"), min_size=1))
def test_answer_line_round_trips_any_value(value: str) -> None:
    stripped = value.strip(" \t*")
    if not stripped or re.search(r"(?i)answer", value):
        return  # a value that itself says "answer:" is read from its own marker on
    assert answer_line(f"some reasoning 1 2 3\nAnswer: {value}") == stripped
    assert score_output(f"blah\nAnswer: {value}\n", value, "text") == (
        1.0 if normalize_text(value) else 0.0
    )


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_number_answer_round_trips(value: int) -> None:
    assert parse_number(extract_answer(f"I computed it.\nAnswer: {value}", "number") or "") == value
    assert score_output(f"Answer: {value}", str(value), "number") == 1.0
    assert score_output(f"Answer: {value:,}", str(value), "number") == 1.0
    assert score_output(f"Answer: {value + 1}", str(value), "number") == 0.0


@given(st.booleans())
def test_boolean_answer_round_trips(value: bool) -> None:
    assert score_output(f"Answer: {value}", str(value), "boolean") == 1.0
    assert score_output(f"Answer: {not value}", str(value), "boolean") == 0.0


@given(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=8))
def test_words_answer_round_trips(words: list[str]) -> None:
    truth = ", ".join(words)
    assert score_output(f"Sorted:\nAnswer: {truth}", truth, "words") == 1.0
    assert score_output(f"Answer: {' '.join(words).upper()}.", truth, "words") == 1.0
    assert score_output(f"Answer: {truth}, extra", truth, "words") == 0.0


# ---------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", Fraction(42)),
        ("-7", Fraction(-7)),
        ("\u22127", Fraction(-7)),
        ("$1,234.50", Fraction("1234.5")),
        ("12.0", Fraction(12)),
        ("it is 3.", Fraction(3)),
        ("5-3", Fraction(3)),  # subtraction, not a negative number
        ("(2)-1", Fraction(1)),
        ("x = -1", Fraction(-1)),
        ("1,2,3", Fraction(3)),  # a list, not a thousands separator
        ("no digits", None),
    ],
)
def test_parse_number(text: str, value: Fraction | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("True", True), ("false.", False), ("It is TRUE", True), ("true or false", None), ("", None)],
)
def test_parse_boolean(text: str, value: bool | None) -> None:
    assert parse_boolean(text) == value


def test_parse_words_and_normalize_text() -> None:
    assert parse_words("Apple, banana; cherry-pie 3 don't") == (
        "apple",
        "banana",
        "cherry-pie",
        "don't",
    )
    assert normalize_text("  **The   Cat.** ") == "the cat"


# ---------------------------------------------------------------------- scoring


def test_number_fallback_is_the_last_number() -> None:
    assert score_output("17 + 5 = 22, 22 * 3 = 66, 66 - 8 = 58", "58", "number") == 1.0
    assert score_output("The answer is 58. Check: 58 = 58 + 0", "58", "number") == 0.0


def test_answer_line_beats_the_fallback() -> None:
    assert score_output("Answer: 12\nbecause 3 * 4 = 12 and 13 is prime", "12", "number") == 1.0
    assert score_output("Answer: 13\nbecause 3 * 4 = 12", "12", "number") == 0.0


@pytest.mark.parametrize(
    "output",
    [
        "Possible answers: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
        "Answer: 58 or 59 or 60",
        "Answer: 10\n" + " ".join(str(n) for n in range(100)),
        "58 is wrong. Answer: 57",
        "Answer: 58\nAnswer: 61",
    ],
)
def test_listing_many_numbers_earns_no_credit(output: str) -> None:
    assert score_output(output, "58", "number") == 0.0


def test_boolean_hedging_earns_no_credit() -> None:
    assert score_output("Answer: True or False", "True", "boolean") == 0.0
    assert score_output("Answer: True or False", "False", "boolean") == 0.0
    assert score_output("It could be True. It is False", "False", "boolean") == 1.0
    assert score_output("It could be True. It is False", "True", "boolean") == 0.0


def test_words_must_match_exactly_in_order() -> None:
    truth = "apple, banana, cherry"
    assert score_output("Answer: apple banana cherry", truth, "words") == 1.0
    assert score_output("Answer: banana, apple, cherry", truth, "words") == 0.0
    assert score_output("Answer: apple, apple, banana, cherry", truth, "words") == 0.0
    # no answer line: the last line is read, not every word in the output
    assert score_output("apple, banana, cherry\ncherry, banana, apple", truth, "words") == 0.0
    assert score_output("Sorting...\napple, banana, cherry", truth, "words") == 1.0
    assert score_output("The sorted words are: apple, banana, cherry", truth, "words") == 1.0
    assert score_output("Sorted: cherry, banana, apple", truth, "words") == 0.0


def test_empty_truth_never_matches() -> None:
    assert not answers_match("", "", "text")
    assert not answers_match("x", "...", "words")
    assert not answers_match("5", "none", "number")
    assert not answers_match(None, "5", "number")


def test_unknown_kind_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown answer kind"):
        answers_match("1", "1", "fuzzy")  # type: ignore[arg-type]
