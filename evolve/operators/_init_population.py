"""The initial population, and the default seed lists it draws from.

Each unit draws a mutation prompt (kept as the unit's own) and a thinking
style; the mutator LLM turns "thinking style + mutation prompt + problem
description" into each task prompt. An unusable answer (no prompt in it, an
echo of the request's parts, a copy of the unit's other task prompt) is retried
with a fresh draw of both up to ``attempts`` times; after that the task prompt
falls back to the thinking style followed by the problem description, and the
last exchange records it under ``"fallback"``. With ``constrained`` (the default,
as for the prompt operators) each answer is constrained, on servers that take a
grammar, to one instruction of at most ``max_chars`` characters on one line with no
preamble. Units are made concurrently, each from its own generator spawned from
``rng``, so the result does not depend on the order in which the LLM answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._errors import ConfigError, LLMError
from .._genome import PromptGenome
from .._llm_failures import stops_the_run
from ._base import InvalidChild, Mutation, MutatorLLM, Transcript, pick
from ._text import MAX_PROMPT_CHARS, cap, same_text

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def read_lines(path: str | Path) -> tuple[str, ...]:
    """The non-blank lines of a text file that do not start with ``#``, stripped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(s for s in (ln.strip() for ln in lines) if s and not s.startswith("#"))


def default_thinking_styles() -> tuple[str, ...]:
    return read_lines(DATA_DIR / "thinking_styles.txt")


def default_mutation_prompts() -> tuple[str, ...]:
    return read_lines(DATA_DIR / "mutation_prompts.txt")


def default_hyper_mutation_prompts() -> tuple[str, ...]:
    return read_lines(DATA_DIR / "hyper_mutation_prompts.txt")


def init_request(thinking_style: str, mutation_prompt: str, problem: str) -> str:
    return (f"{thinking_style}\n{mutation_prompt}\n\n"
            f"PROBLEM DESCRIPTION:\n{problem}\n\n"
            "Write an instruction that will help a language model solve problems like "
            "this one. Reply with the instruction only.")


def fallback_prompt(thinking_style: str, problem: str, max_chars: int) -> str:
    """The task prompt used when the LLM gave nothing usable."""
    return cap(" ".join(f"{thinking_style} {problem}".split()), max_chars)


async def initial_population(
    *,
    size: int,
    problem: str,
    thinking_styles: Sequence[str],
    mutation_prompts: Sequence[str],
    llm: MutatorLLM,
    rng: np.random.Generator,
    n_task_prompts: int = 1,
    max_tokens: int | None = 256,
    temperature: float | None = None,
    attempts: int = 3,
    max_chars: int = MAX_PROMPT_CHARS,
    constrained: bool = True,
) -> list[Mutation]:
    """``size`` founder genomes with the exchanges that made them, in a fixed order."""
    if not thinking_styles or not mutation_prompts:
        raise ConfigError("the initial population needs at least one thinking style and one "
                          "mutation prompt; check the configured lists")
    if size < 0 or n_task_prompts < 1 or attempts < 1:
        raise ValueError("size must be >= 0, n_task_prompts and attempts >= 1")

    async def unit(unit_rng: np.random.Generator) -> Mutation:
        transcript = Transcript(llm, unit_rng, max_tokens=max_tokens, temperature=temperature,
                                constrained=constrained)
        mutation_prompt = pick(unit_rng, mutation_prompts)
        prompts: list[str] = []
        for _ in range(n_task_prompts):
            prompts.append(await _task_prompt(
                transcript, unit_rng, mutation_prompt, prompts, thinking_styles,
                mutation_prompts, problem, attempts, max_chars))
        return Mutation(PromptGenome(tuple(prompts), mutation_prompt),
                        exchanges=tuple(transcript.exchanges))

    return list(await asyncio.gather(*(unit(r) for r in rng.spawn(size))))


async def _task_prompt(transcript: Transcript, rng: np.random.Generator, mutation_prompt: str,
                       others: Sequence[str], thinking_styles: Sequence[str],
                       mutation_prompts: Sequence[str], problem: str, attempts: int,
                       max_chars: int) -> str:
    style = pick(rng, thinking_styles)
    for attempt in range(attempts):
        if attempt:
            mutation_prompt, style = pick(rng, mutation_prompts), pick(rng, thinking_styles)
        request = init_request(style, mutation_prompt, problem)
        try:
            text = await transcript.ask_prompt(request, what="task prompt", max_chars=max_chars)
        except InvalidChild:
            continue  # the exchange is marked rejected; draw again
        except LLMError as exc:  # after the client's retries: a slow or failing server
            if stops_the_run(exc):
                raise
            text = fallback_prompt(style, problem, max_chars)
            transcript.exchanges.append({
                "messages": [{"role": "user", "content": request}], "response": None,
                "error": str(exc), "fallback": text, "cached": False, "calls": 0,
                "prompt_tokens": 0, "completion_tokens": 0})
            return text  # a unit is made without the model rather than stop the run
        if any(same_text(text, s) for s in (style, mutation_prompt)):
            transcript.reject("the answer only repeats the thinking style or mutation prompt")
        elif any(same_text(text, s) for s in others):
            transcript.reject("the answer repeats the unit's other task prompt")
        else:
            return text
    text = fallback_prompt(style, problem, max_chars)
    transcript.exchanges[-1]["fallback"] = text
    return text
