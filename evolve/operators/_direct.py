"""Direct mutation: a new task prompt from the problem alone, or from the parent's.

``zero_order_direct`` asks for a fresh hint from the problem description only,
so it can re-introduce ideas the population has lost. ``first_order_direct``
applies the unit's mutation prompt to one of its task prompts; the same step
finishes both hypermutation operators (see ``_hyper.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._genome import PromptGenome
from ._base import MutationContext, PromptOperator, Transcript


def zero_order_request(problem: str) -> str:
    return (f"Problem description:\n{problem}\n\n"
            "Write one short, general hint or instruction that would help someone solve "
            "problems of this kind. Reply with the hint only.")


def mutation_request(mutation_prompt: str, task_prompt: str) -> str:
    """The request applying a mutation prompt to a task prompt."""
    return (f"{mutation_prompt}\n\n"
            f"ORIGINAL INSTRUCTION:\n{task_prompt}\n\n"
            "Reply with the rewritten instruction only.")


async def apply_mutation_prompt(transcript: Transcript, mutation_prompt: str, task_prompt: str,
                                max_chars: int) -> str:
    """The task prompt rewritten by the mutator following ``mutation_prompt``."""
    return await transcript.ask_prompt(mutation_request(mutation_prompt, task_prompt),
                                       what="task prompt", max_chars=max_chars)


@dataclass(frozen=True, kw_only=True)
class ZeroOrderDirect(PromptOperator):
    """A new task prompt from the problem description alone (the parent's is not shown)."""

    name: ClassVar[str] = "zero_order_direct"

    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        return await transcript.ask_prompt(zero_order_request(ctx.problem), what="task prompt",
                                           max_chars=self.max_chars)


@dataclass(frozen=True, kw_only=True)
class FirstOrderDirect(PromptOperator):
    """The unit's mutation prompt applied to one of its task prompts."""

    name: ClassVar[str] = "first_order_direct"

    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        return await apply_mutation_prompt(transcript, genome.mutation_prompt,
                                           genome.task_prompts[slot], self.max_chars)
