"""Cleaning LLM answers into one prompt, and the trigram similarity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evolve.operators._text import (
    cap,
    clean_prompt,
    distinct,
    normalise,
    numbered,
    same_text,
    similarity,
)


@pytest.mark.parametrize(("answer", "expected"), [
    ("Think step by step.", "Think step by step."),
    ("  \"Think step by step.\"  ", "Think step by step."),
    ("INSTRUCTION MUTANT: Check each step.", "Check each step."),
    ("Sure! Here is an improved instruction:\n\n\"Check each step.\"\n\nThis is better because",
     "Check each step."),
    ("**New instruction:** Check each step.", "Check each step."),
    ("1. Read carefully.\n2. Compute.\n3. Check.", "Read carefully."),
    ("- Read carefully.\n- Compute.", "Read carefully."),
    ("[2] Read carefully.", "Read carefully."),
    ("Use hints. Reply with the hint only.", "Use hints."),
    ("Answer \"yes\" or \"no\" after reasoning.", "Answer \"yes\" or \"no\" after reasoning."),
    ("The instruction was: Add.", "Add."),
    ("Reply with the instruction only.", ""),
    ("```\nSplit the problem into parts.\n```", "Split the problem into parts."),
    ("<think>hmm, let me see</think>\nWork backwards.", "Work backwards."),
    ("Read the question.\nThen write the answer.\n\nExplanation: ...",
     "Read the question. Then write the answer."),
    ("Prompt: “Estimate first.”", "Estimate first."),
    ("Here's a better one:\nInstruction 3: Draw a table.", "Draw a table."),
    ("ORIGINAL INSTRUCTION: Add.\nREWRITTEN INSTRUCTION: Add the units first.",
     "Add the units first."),
    ("ORIGINAL INSTRUCTION:\nAdd.\n\nThe rewritten instruction is: \"Add the units first.\"",
     "Add the units first."),
    ("Instruction Mutant = Be careful.", "Be careful."),
    ("Rewritten instruction: Solve it step by step.", "Solve it step by step."),
    ("To solve this word problem:\n\nAdd the numbers in order.", "Add the numbers in order."),
    ("The original instruction is:", ""),
    # a one-line answer under an echo label (first_order_direct's one-line grammar): its text
    ("Original instruction: Add the units first.", "Add the units first."),
    ("**Original instruction:** Add.\n\n", "Add."),
    ("The instruction should be \"Check the units.\"", "Check the units."),
    ("The instruction given is \"Check the units.\"", "Check the units."),
    ("Sure, I can help. Check the units first.", "Check the units first."),
    ("The instruction is to add the numbers.", "The instruction is to add the numbers."),
    ("Instructions: read, then add.", "read, then add."),
    ("", ""),
    ("   \n\n  ", ""),
    ("\"\"", ""),
    ("Sure!", ""),
    ("1.", ""),
    ("Answer:", ""),
])
def test_clean_prompt(answer: str, expected: str) -> None:
    assert clean_prompt(answer) == expected


def test_clean_prompt_first_line_only() -> None:
    text = "Estimate, then compute.\nA second line that is not part of the item."
    assert clean_prompt(text, first_line=True) == "Estimate, then compute."
    assert clean_prompt(text) == ("Estimate, then compute. A second line that is not part of "
                                  "the item.")


def test_clean_prompt_caps_length_at_a_sentence_end() -> None:
    text = "First sentence is here. " * 20
    out = clean_prompt(text, max_chars=100)
    assert len(out) <= 100 and out.endswith(".")
    assert cap("word " * 50, 42).count(" ") < 10 and len(cap("word " * 50, 42)) <= 42


@given(st.text(max_size=400), st.integers(min_value=20, max_value=300))
def test_clean_prompt_never_exceeds_cap_and_is_stripped(text: str, max_chars: int) -> None:
    out = clean_prompt(text, max_chars=max_chars)
    assert len(out) <= max_chars
    assert out == out.strip()
    assert "\n" not in out


def test_same_text_ignores_case_space_and_edge_punctuation() -> None:
    assert same_text("Think  step by step.", "think step by step")
    assert not same_text("Think step by step.", "Think twice.")
    assert normalise("  A  b. ") == "a b"


def test_similarity_spots_near_duplicates() -> None:
    assert similarity("Think step by step.", "think step by step!") == pytest.approx(1.0)
    assert similarity("Think step by step.", "Think step-by-step.") > 0.8
    assert similarity("Think step by step.", "Draw a diagram of the situation first.") < 0.3
    assert similarity("", "anything") == 0.0


@given(st.text(max_size=80), st.text(max_size=80))
def test_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    s = similarity(a, b)
    assert 0.0 <= s <= 1.0 + 1e-9
    assert s == pytest.approx(similarity(b, a))


@given(st.lists(st.text(alphabet="abcde xyz.", min_size=3, max_size=30), max_size=25),
       st.floats(min_value=0.3, max_value=1.0), st.integers(min_value=1, max_value=30))
def test_distinct_keeps_no_near_duplicates(texts: list[str], threshold: float,
                                           limit: int) -> None:
    kept = distinct(texts, threshold, limit)
    assert kept == sorted(set(kept)) and len(kept) <= limit
    for i in kept:
        for j in kept:
            if i < j:
                assert similarity(texts[i], texts[j]) < threshold


def test_numbered_flattens_items() -> None:
    assert numbered(["a\nb", "c"]) == "1. a b\n2. c"
    assert numbered(["x"], start=4) == "4. x"
