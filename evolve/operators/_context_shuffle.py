"""Context shuffling: refresh the unit's few-shot context with correct working-outs.

A correct working-out of the parent (question and the model's output) that is
not yet in the context is added while the context is under ``capacity``;
once full, it replaces a randomly chosen item. No LLM call is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._genome import PromptGenome
from .._schema import doc
from ._applicable import NotApplicable
from ._base import Mutation, MutationContext, Operator, parent_genome, pick
from ._text import cap


def context_item(question: str, output: str, max_chars: int) -> str:
    """One few-shot item: ``Q: <question>`` and ``A: <worked answer>`` on separate lines."""
    return f"Q: {cap(question.strip(), max_chars)}\nA: {cap(output.strip(), max_chars)}"


@dataclass(frozen=True, kw_only=True)
class ContextShuffle(Operator):
    """Add a correct working-out to the few-shot context, or swap one in when full."""

    name: ClassVar[str] = "context_shuffle"
    capacity: int = doc("Most worked examples kept in a unit's few-shot context.", 3)
    max_item_chars: int = doc(
        "Longest question and answer kept in a context item, each, in characters.", 1000)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if self.max_item_chars < 20:
            raise ValueError("max_item_chars must be at least 20")

    async def mutate(self, ctx: MutationContext) -> Mutation:
        parent = parent_genome(ctx)
        items = dict.fromkeys(context_item(q, a, self.max_item_chars)
                              for q, a in ctx.correct_workings)
        fresh = [item for item in items if item not in parent.context]
        if not fresh:
            raise NotApplicable("context_shuffle: the parent has no correct working-out that "
                                "is not already in its context")
        item = pick(ctx.rng, fresh)
        context = list(parent.context)
        if len(context) < self.capacity:
            context.append(item)
        else:
            context[int(ctx.rng.integers(len(context)))] = item
        return Mutation(PromptGenome(parent.task_prompts, parent.mutation_prompt, tuple(context)))
