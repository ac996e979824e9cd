"""Evaluate task prompts: render each example, ask the task model, score with the benchmark.

The prompt under evolution controls only the text around the question. The
answer-format line is appended by this module from the benchmark (trusted and
fixed), and the score comes from the benchmark's scorer reading the raw output.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._benchmark import Benchmark, Example


class ChatResponse(Protocol):
    """What a task model returns for one chat request."""

    @property
    def text(self) -> str: ...

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cached(self) -> bool: ...


class TaskModel(Protocol):
    """The LLM that answers benchmark questions (an OpenAI-compatible chat client)."""

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> ChatResponse: ...


@dataclass(frozen=True)
class ExampleResult:
    """The score of one example and the raw output it was computed from."""

    example_id: str
    score: float
    output: str


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one set of task prompts on a batch of examples."""

    mean: float
    results: tuple[ExampleResult, ...]
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cache_hits: int

    def scores(self) -> dict[str, float]:
        """Score per example id."""
        return {result.example_id: result.score for result in self.results}


def render_messages(
    task_prompts: Sequence[str],
    context: Sequence[str],
    question: str,
    answer_format: str,
) -> list[dict[str, str]]:
    """The chat messages for one question (one user message).

    Order: the few-shot ``context`` items, the first task prompt, the question,
    the remaining task prompts, and last the benchmark's ``answer_format`` line.
    Blank parts are left out; parts are separated by blank lines.
    """
    first, rest = (task_prompts[0], task_prompts[1:]) if task_prompts else ("", ())
    parts = [*context, first, question, *rest]
    body = [part.strip() for part in parts if part.strip()]
    body.append(answer_format.strip())
    return [{"role": "user", "content": "\n\n".join(body)}]


class PromptEvaluator:
    """Scores task prompts (with optional few-shot context) on benchmark examples."""

    def __init__(
        self,
        benchmark: Benchmark,
        model: TaskModel,
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ):
        self.benchmark = benchmark
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature

    async def evaluate(
        self,
        task_prompts: Sequence[str],
        context: Sequence[str],
        examples: Sequence[Example],
        *,
        seed: int | None = None,
    ) -> Evaluation:
        """Ask the model about every example at once and score the outputs.

        Errors from the model propagate unchanged (the requests still in
        flight are cancelled first).
        """
        if not examples:
            raise ValueError("evaluate() needs at least one example")
        def ask(example: Example) -> Awaitable[ChatResponse]:
            return self.model.chat(
                render_messages(task_prompts, context, example.question,
                                self.benchmark.answer_format),
                max_tokens=self.max_tokens, temperature=self.temperature, seed=seed)

        if len(examples) == 1:  # no task needed for a batch of one
            responses = [await ask(examples[0])]
        else:
            requests = [asyncio.ensure_future(ask(example)) for example in examples]
            try:
                responses = await asyncio.gather(*requests)
            except BaseException:
                for request in requests:
                    request.cancel()
                await asyncio.gather(*requests, return_exceptions=True)
                raise
        results = []
        for example, response in zip(examples, responses, strict=True):
            score = float(self.benchmark.score(example, response.text))
            if math.isnan(score) or not 0.0 <= score <= 1.0:
                raise ValueError(
                    f"{self.benchmark.name} scored example {example.id!r} as {score}, "
                    f"outside [0, 1]"
                )
            results.append(ExampleResult(example.id, score, response.text))
        return Evaluation(
            mean=sum(result.score for result in results) / len(results),
            results=tuple(results),
            prompt_tokens=sum(response.prompt_tokens for response in responses),
            completion_tokens=sum(response.completion_tokens for response in responses),
            calls=len(responses),
            cache_hits=sum(1 for response in responses if response.cached),
        )
