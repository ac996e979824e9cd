"""What ``evolve show`` says of how a child was made: a mutation reply cut at max_tokens is
named as such, and operators that could not apply and gave way are listed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import numpy as np

from evolve._report import format_show, show
from evolve.llm import Completion
from evolve.operators import Transcript
from tests.evolve.selection.sel_support import candidate


class _LLM:
    """Answers each request with the next (text, finish_reason)."""

    def __init__(self, *answers: tuple[str, str]) -> None:
        self.answers = list(answers)

    async def chat(self, messages: list[dict[str, str]], **params: Any) -> Completion:
        text, finish = self.answers.pop(0)
        return Completion(text, 12, 1536 if finish == "length" else 4, finish)


def shown(mutation: dict[str, Any]) -> str:
    child = replace(candidate(2, 0.0, parents=(1,)), mutation=mutation)
    return format_show(show(child))


def exchanges(*answers: tuple[str, str]) -> list[dict[str, Any]]:
    """The exchanges as a mutation records them (``Transcript``), for ``answers``."""
    transcript = Transcript(_LLM(*answers), np.random.default_rng(0), max_tokens=1536,
                            temperature=0.8)

    async def ask_all() -> None:
        for _ in answers:
            await transcript.ask("Improve the program.")

    asyncio.run(ask_all())
    return transcript.exchanges


def test_a_reply_cut_at_max_tokens_is_named_and_a_finished_one_is_not() -> None:
    text = shown({"exchanges": exchanges(("def pack(): ...", "length"), ("done", "stop"))})
    lines = text.splitlines()
    first = lines.index("mutation response 1 (cut at max_tokens = 1536: the model had not "
                        "finished; raise the mutator's max_tokens):")
    assert lines[first + 1] == "  def pack(): ..."
    assert "mutation response 2:" in lines
    assert text.count("cut at max_tokens") == 1


def test_a_cached_cut_reply_says_both() -> None:
    [exchange] = exchanges(("x = 1", "length"))
    text = shown({"exchanges": [{**exchange, "cached": True}]})
    assert "mutation response 1 (cached) (cut at max_tokens = 1536:" in text


def test_operators_that_could_not_apply_are_listed() -> None:
    text = shown({"exchanges": [], "declined": {
        "merge": "merge: no other population member (with a different commit) to merge with",
        "lamarckian": "nothing to learn from"}})
    assert ("drawn but could not apply, another operator was drawn: merge: no other population "
            "member (with a different commit) to merge with") in text
    assert ("drawn but could not apply, another operator was drawn: lamarckian: nothing to "
            "learn from") in text


def test_a_request_that_got_no_answer_shows_why() -> None:
    error = "mutator LLM server at http://h/v1 rejected the request (HTTP 400): bad grammar"
    text = shown({"exchanges": [{"messages": [], "params": {"max_tokens": 64},
                                 "response": None, "error": error}]})
    assert f"mutation response 1:\n  (no answer: {error})" in text
