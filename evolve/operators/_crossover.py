"""Prompt crossover: take a task prompt from another population member.

The donor is drawn fitness-proportionally among the other population members
whose task prompt (at the same position) is not empty and differs from the
parent's; no LLM call is made. The donor is recorded as a second parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._applicable import NotApplicable
from ._base import Mutation, MutationContext, Operator, member_prompt, parent_genome
from ._donor import draw_member
from ._text import same_text


@dataclass(frozen=True, kw_only=True)
class Crossover(Operator):
    """Replace one task prompt with a fitness-proportionally chosen member's."""

    name: ClassVar[str] = "crossover"

    async def mutate(self, ctx: MutationContext) -> Mutation:
        parent = parent_genome(ctx)
        prompts = list(parent.task_prompts)
        slot = int(ctx.rng.integers(len(prompts)))

        def differs(cid: int) -> bool:
            text = member_prompt(ctx.view, cid, slot)
            return (cid != ctx.parent.id and text is not None and bool(text.strip())
                    and not same_text(text, prompts[slot]))

        donor = draw_member(ctx.view, ctx.rng, differs)
        if donor is None:
            raise NotApplicable(
                "crossover: no other population member has a different task prompt")
        prompts[slot] = str(member_prompt(ctx.view, donor, slot))
        return Mutation(parent.with_task_prompts(*prompts), extra_parents=(donor,))
