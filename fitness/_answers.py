"""Trusted answer extraction and comparison.

This is the scoring side of the anchor: it reads a model's raw output, pulls
out exactly one answer by fixed rules, and compares it with the ground truth.
Nothing here is influenced by the prompt being evaluated.

Rules, in order:

1. If the output has a line containing ``Answer:`` (case-insensitive, markdown
   emphasis allowed, e.g. ``**Final answer:** 42``; ``The answer is: 42``
   counts too), the *last* such line wins and its text after the last
   ``answer:`` is the answer (``The answer is: Answer: 5`` gives ``5``), or
   the next non-empty line if nothing follows the colon.
2. Otherwise a per-kind fallback applies: the last number in the output, the
   last boolean word, the words after the last colon of the last non-empty
   line, or the last non-empty line.

Then the answer is read according to its kind -- ``number`` (the last number
in the answer text), ``boolean`` (exactly one of true/false), ``words`` (the
sequence of words) or ``text`` (the whole text) -- and compared exactly after
normalisation. One output yields at most one answer, so listing many
candidates never earns credit by containing the right one somewhere.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Literal, get_args

AnswerKind = Literal["number", "boolean", "words", "text"]
ANSWER_KINDS: tuple[str, ...] = get_args(AnswerKind)

_ANSWER_MARK = re.compile(r"\banswer(?:\s+is)?\s*\**\s*[:\uff1a]", re.IGNORECASE)
# A number, optionally negative (a minus right after a word character or a
# closing bracket is a subtraction, not a sign), with optional thousands
# separators and decimals.
_NUMBER = re.compile(r"(?:(?<![\w)\]])[-\u2212])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
_BOOLEAN = re.compile(r"\b(true|false)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_STRIP_CHARS = " \t\r*_`\"'.,;:!?()[]{}<>"
_EMPHASIS = " \t\r*"  # what answer_line strips: whitespace and markdown bold/italics


def _lines(output: str) -> list[str]:
    return [line.rstrip("\r") for line in output.split("\n")]


def answer_line(output: str) -> str | None:
    """The text after the last ``Answer:`` on the last line that has one, or ``None``.

    Surrounding whitespace and ``*`` (markdown emphasis) are stripped; the
    per-kind parsers ignore other punctuation. If the marker ends its line,
    the next non-empty line is the answer.
    """
    lines = _lines(output)
    for index in range(len(lines) - 1, -1, -1):
        marks = list(_ANSWER_MARK.finditer(lines[index]))
        if not marks:
            continue
        value = lines[index][marks[-1].end() :].strip(_EMPHASIS)
        if value:
            return value
        for following in lines[index + 1 :]:
            value = following.strip(_EMPHASIS)
            if value:
                return value
        return None
    return None


def last_nonempty_line(output: str) -> str | None:
    """The last line with visible text (whitespace and ``*`` stripped), or ``None``."""
    for line in reversed(_lines(output)):
        value = line.strip(_EMPHASIS)
        if value:
            return value
    return None


def parse_number(text: str) -> Fraction | None:
    """The last number in ``text`` as an exact fraction, or ``None``.

    ``"1,234.50"`` -> 1234.5, ``"$-3"`` -> -3, ``"12.0"`` == ``"12"``.
    """
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    try:
        return Fraction(matches[-1].replace(",", "").replace("\u2212", "-"))
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


def parse_boolean(text: str) -> bool | None:
    """``True``/``False`` if ``text`` names exactly one truth value, else ``None``."""
    values = {word.lower() for word in _BOOLEAN.findall(text)}
    if len(values) != 1:
        return None
    return values.pop() == "true"


def parse_words(text: str) -> tuple[str, ...]:
    """The words of ``text``, case-folded, in order (digits and punctuation dropped)."""
    return tuple(word.casefold() for word in _WORD.findall(text))


def normalize_text(text: str) -> str:
    """Case-folded, whitespace collapsed, surrounding punctuation and emphasis stripped."""
    return " ".join(text.casefold().split()).strip(_STRIP_CHARS)


def extract_answer(output: str, kind: AnswerKind) -> str | None:
    """The answer text the scorer reads from a raw ``output`` (see module rules)."""
    found = answer_line(output)
    if found is not None:
        return found
    if kind == "number":
        matches = _NUMBER.findall(output)
        return matches[-1] if matches else None
    if kind == "boolean":
        matches = _BOOLEAN.findall(output)
        return matches[-1] if matches else None
    line = last_nonempty_line(output)
    if kind == "words" and line is not None and ":" in line:
        return line.rsplit(":", 1)[1].strip(_EMPHASIS) or line  # "Sorted: a, b" -> "a, b"
    return line


def answers_match(extracted: str | None, truth: str, kind: AnswerKind) -> bool:
    """Whether an extracted answer equals the ground truth under ``kind``'s rules."""
    if extracted is None:
        return False
    if kind == "number":
        expected = parse_number(truth)
        return expected is not None and parse_number(extracted) == expected
    if kind == "boolean":
        expected_bool = parse_boolean(truth)
        return expected_bool is not None and parse_boolean(extracted) == expected_bool
    if kind == "words":
        expected_words = parse_words(truth)
        return bool(expected_words) and parse_words(extracted) == expected_words
    if kind == "text":
        expected_text = normalize_text(truth)
        return bool(expected_text) and normalize_text(extracted) == expected_text
    raise ValueError(f"unknown answer kind {kind!r}; expected one of {ANSWER_KINDS}")


def score_output(output: str, truth: str, kind: AnswerKind) -> float:
    """1.0 if the answer extracted from ``output`` equals ``truth``, else 0.0."""
    return 1.0 if answers_match(extract_answer(output, kind), truth, kind) else 0.0
