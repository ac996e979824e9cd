"""Test helpers for the operator tests: a scripted mutator LLM and archive builders."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from archive import ArchiveIndex, Candidate, SplitScore, Status, Usage
from evolve._genome import PromptGenome
from evolve.llm._types import Completion
from evolve.operators import Mutation, MutationContext, Operator

Answer = str | Completion | Exception | Callable[[list[dict[str, str]], int | None], str]


class ScriptedLLM:
    """Returns canned answers in order and records every request exactly as received (a
    ``Completion`` answer gives its text and finish reason, e.g. one cut at max_tokens)."""

    def __init__(self, answers: Sequence[Answer] = (), *, cached: bool = False) -> None:
        self.answers = list(answers)
        self.cached = cached
        self.calls: list[dict[str, Any]] = []

    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                   temperature: float | None = None, seed: int | None = None,
                   stop: list[str] | None = None, grammar: str | None = None) -> Completion:
        self.calls.append({"messages": [dict(m) for m in messages], "max_tokens": max_tokens,
                           "temperature": temperature, "seed": seed, "stop": stop,
                           "grammar": grammar})
        if not self.answers:
            raise AssertionError("the scripted LLM ran out of answers")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        finish_reason = "stop"
        if isinstance(answer, Completion):
            answer, finish_reason = answer.text, answer.finish_reason
        text = answer(messages, seed) if callable(answer) else answer
        return Completion(text, prompt_tokens=11 * len(self.calls),
                          completion_tokens=len(text.split()), finish_reason=finish_reason,
                          cached=self.cached)

    def requests(self) -> list[str]:
        """The user message of each call."""
        return [c["messages"][-1]["content"] for c in self.calls]


def candidate(cid: int, prompts: Sequence[str] = ("Solve it.",), *, mutation_prompt: str = "Mp.",
              context: Sequence[str] = (), fitness: float | None = 0.5,
              status: Status = Status.EVALUATED, parents: Sequence[int] = (),
              retired_by: int | None = None) -> Candidate:
    scores = ({"train": SplitScore("train", fitness)}
              if status is Status.EVALUATED and fitness is not None else {})
    return Candidate(
        id=cid, slot=cid, kind="prompt",
        genome=PromptGenome(tuple(prompts), mutation_prompt, tuple(context)).to_dict(),
        parent_ids=tuple(parents), operator="seed", generation=0, status=status, reason=None,
        retired_by=retired_by, scores=scores, mutation=None, usage=Usage(), timings={},
        descriptors={}, created_at=0.0, updated_at=0.0)


def index_of(*candidates: Candidate) -> ArchiveIndex:
    index = ArchiveIndex()
    for c in candidates:
        index.publish(c)
    return index


def context(view: ArchiveIndex, parent_id: int, llm: ScriptedLLM, *, seed: int = 0,
            problem: str = "Add two whole numbers and give the sum.",
            thinking_styles: Sequence[str] = ("Work step by step.", "Picture the situation."),
            mutation_prompts: Sequence[str] = ("Make it shorter.", "Make it bolder."),
            hyper_mutation_prompts: Sequence[str] = ("Improve this instruction.",
                                                     "Make this instruction sharper."),
            correct_workings: Sequence[tuple[str, str]] = (),
            max_tokens: int = 64, temperature: float | None = 0.7) -> MutationContext:
    return MutationContext(
        parent=view.get(parent_id), view=view, rng=np.random.default_rng(seed), llm=llm,
        problem=problem, thinking_styles=tuple(thinking_styles),
        mutation_prompts=tuple(mutation_prompts),
        hyper_mutation_prompts=tuple(hyper_mutation_prompts),
        correct_workings=tuple(correct_workings), max_tokens=max_tokens, temperature=temperature)


def run(operator: Operator, ctx: MutationContext) -> Mutation:
    return asyncio.run(operator.mutate(ctx))


def assert_recorded(mutation_or_exchanges: Any, llm: ScriptedLLM) -> None:
    """The exchanges are exactly the requests the LLM received and its answers."""
    exchanges = getattr(mutation_or_exchanges, "exchanges", mutation_or_exchanges)
    assert len(exchanges) == len(llm.calls)
    for i, (ex, call) in enumerate(zip(exchanges, llm.calls, strict=True)):
        assert ex["messages"] == call["messages"]
        assert ex["params"] == {"max_tokens": call["max_tokens"],
                                "temperature": call["temperature"], "seed": call["seed"],
                                "stop": call["stop"],
                                **({"grammar": call["grammar"]} if call["grammar"] else {})}
        assert isinstance(call["seed"], int)
        assert ex["prompt_tokens"] == 11 * (i + 1)
        assert ex["cached"] is llm.cached
        if ex["response"] is not None:
            assert ex["completion_tokens"] == len(ex["response"].split())
