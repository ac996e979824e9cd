"""Prompt crossover: take a task prompt from another population member.

The donor is drawn fitness-proportionally among the other population members
whose task prompt (at the same position) is not empty and differs from the
parent's; no LLM call is made. The donor is recorded as a second parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._base import (
    InvalidChild,
    Mutation,
    MutationContext,
    Operator,
    parent_genome,
    population_prompts,
)
from ._text import same_text


def fitness_proportional(rng: np.random.Generator, fitness: np.ndarray) -> int:
    """An index drawn with probability proportional to fitness (clipped at 0; uniform
    when no fitness is positive)."""
    weights = np.clip(np.nan_to_num(fitness, nan=0.0), 0.0, None)
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        return int(rng.integers(len(fitness)))
    return int(rng.choice(len(fitness), p=weights / total))


@dataclass(frozen=True, kw_only=True)
class Crossover(Operator):
    """Replace one task prompt with a fitness-proportionally chosen member's."""

    name: ClassVar[str] = "crossover"

    async def mutate(self, ctx: MutationContext) -> Mutation:
        parent = parent_genome(ctx)
        prompts = list(parent.task_prompts)
        slot = int(ctx.rng.integers(len(prompts)))
        donors = [m for m in population_prompts(ctx.view, slot, exclude=ctx.parent.id)
                  if m[2].strip() and not same_text(m[2], prompts[slot])]
        if not donors:
            raise InvalidChild(
                "crossover: no other population member has a different task prompt")
        donor_id, _, text = donors[fitness_proportional(
            ctx.rng, np.array([m[1] for m in donors]))]
        prompts[slot] = text
        return Mutation(parent.with_task_prompts(*prompts), extra_parents=(donor_id,))
