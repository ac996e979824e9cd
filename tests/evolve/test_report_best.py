"""What ``evolve status`` and ``evolve show`` say of prompt candidates: which one is best and
by which split, and each example's result."""

from __future__ import annotations

from dataclasses import replace

from archive import ExampleScore, SplitScore
from evolve._report import children_report, format_show, format_status, show, summary
from tests.evolve.selection.sel_support import candidate, index_of


def scored(cid: int, train: float, validation: float | None = None):
    c = candidate(cid, train, parents=() if cid == 1 else (1,))
    if validation is not None:
        c = replace(c, scores={**c.scores, "validation": SplitScore("validation", validation)})
    return replace(c, slot=cid - 1)


def test_with_only_the_seed_validated_the_best_is_chosen_by_training_score():
    # fitness.validate_top: 0 validates the seed alone, as a baseline: it must not win
    index = index_of(scored(1, 0.0, 0.0), scored(2, 0.99), scored(3, 0.5))
    result = summary(index)
    assert (result["seed"]["id"], result["best"]["id"], result["best_by"]) == (1, 2, "train")


def test_once_a_child_is_validated_the_best_is_chosen_by_validation_score():
    index = index_of(scored(1, 0.0, 0.1), scored(2, 0.99, 0.2), scored(3, 0.5, 0.7))
    result = summary(index)
    assert (result["best"]["id"], result["best_by"]) == (3, "validation")


def test_status_text_says_which_split_chose_the_best():
    data = {"name": "r", "directory": "/d", "state": "finished", "stop_reason": None,
            "candidates": 3, "counts": {"evaluated": 3},
            "llm": {"calls": 0, "tokens": 0, "cache_hits": 0},
            "children": children_report(index_of()),
            **summary(index_of(scored(1, 0.0, 0.0), scored(2, 0.99)))}
    assert "best: #2 train 0.990" in format_status(data)
    assert "[chosen by train score]" in format_status(data)


def test_show_prints_each_examples_id_score_and_extracted_answer_for_a_prompt():
    examples = (ExampleScore("gsm8k-17", 1.0, "42"), ExampleScore("gsm8k-3", 0.0, "7 apples"))
    c = replace(candidate(2, 0.5, parents=(1,)),
                scores={"train": SplitScore("train", 0.5, examples)})
    text = format_show(show(c))
    assert "score train: 0.500 (1/2)" in text
    assert "  gsm8k-17: 1.000 42" in text and "  gsm8k-3: 0.000 7 apples" in text
