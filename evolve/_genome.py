"""Prompt genome: what a prompt candidate is made of (Promptbreeder's unit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROMPT_KIND = "prompt"


@dataclass(frozen=True)
class PromptGenome:
    """A unit of evolution for prompts.

    ``task_prompts`` are placed around the question (the first before it, the
    others after it); ``mutation_prompt`` is the instruction the mutator LLM
    uses to vary them and evolves itself under hypermutation; ``context`` is an
    optional few-shot list of worked examples shown before the question.
    """

    task_prompts: tuple[str, ...]
    mutation_prompt: str
    context: tuple[str, ...] = ()

    def with_task_prompts(self, *prompts: str) -> PromptGenome:
        return PromptGenome(tuple(prompts), self.mutation_prompt, self.context)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_prompts": list(self.task_prompts),
            "mutation_prompt": self.mutation_prompt,
            "context": list(self.context),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptGenome:
        return cls(
            tuple(data["task_prompts"]), data["mutation_prompt"], tuple(data.get("context", ()))
        )
