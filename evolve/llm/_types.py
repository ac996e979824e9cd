"""Plain records exchanged with the LLM client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Completion:
    """One chat completion: the text and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False  # served from the archive's response cache (cost nothing)


@dataclass(frozen=True)
class Embedding:
    """One text's embedding vector and what it cost."""

    vector: tuple[float, ...]
    prompt_tokens: int = 0
    completion_tokens: int = 0  # always 0: counted alike with completions
    cached: bool = False
