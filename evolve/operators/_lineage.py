"""Lineage-based mutation: the LLM continues the history of a lineage's elites.

The parent's line of descent (following each candidate's first parent back to
its founder) is walked oldest to newest, and only the candidates that beat
every earlier one in that line are kept: the lineage's chronological elites.
Their task prompts, in ascending order of quality, are shown and the LLM
proposes the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archive import ArchiveIndex, Candidate

from .._genome import PromptGenome
from .._schema import doc
from ._base import InvalidChild, MutationContext, PromptOperator, Transcript, fitted
from ._text import numbered, same_text


def elites(view: ArchiveIndex, candidate: Candidate, max_depth: int | None = None
           ) -> list[Candidate]:
    """The candidates of the line of descent of ``candidate`` (itself and at most
    ``max_depth`` first-parent ancestors) that beat every earlier one, oldest first."""
    line = view.descent(candidate.id, max_depth)[::-1]
    fitness = view.fitness_of(np.array(line, dtype=np.intp))
    fitness[np.isnan(fitness)] = -np.inf  # not evaluated: beats nothing
    earlier_best = np.maximum.accumulate(np.concatenate(([-np.inf], fitness[:-1])))
    return [view.get(line[i]) for i in np.flatnonzero(fitness > earlier_best).tolist()]


def lineage_request(history: list[str]) -> str:
    n = len(history)
    return ("The instructions below were found one after another, in ascending order of "
            "quality: each one did better than all before it.\n\n"
            f"{numbered(history)}\n\n"
            f"Write item {n + 1}, an even better instruction. Reply with the instruction only.")


@dataclass(frozen=True, kw_only=True)
class Lineage(PromptOperator):
    """Continue the chronological list of the parent lineage's elite task prompts."""

    name: ClassVar[str] = "lineage"
    max_items: int = doc("Most elites listed (the most recent ones are kept).", 10)
    max_depth: int = doc(
        "Ancestors looked at, newest first (bounds the cost in very deep lineages).", 200)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_items < 1 or self.max_depth < 1:
            raise ValueError("max_items and max_depth must be at least 1")

    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        history: list[str] = []
        for c in elites(ctx.view, ctx.parent, self.max_depth):
            prompts = c.genome.get("task_prompts") or ()
            text = str(prompts[min(slot, len(prompts) - 1)]) if prompts else ""
            if text and not (history and same_text(text, history[-1])):
                history.append(text)
        if not history:
            raise InvalidChild("lineage: no evaluated candidate in the parent's lineage",
                               transcript.exchanges)
        request, _ = fitted(lineage_request, history[-self.max_items:], transcript.room,
                            drop_first=True)  # the oldest give way
        return await transcript.ask_prompt(request, what="task prompt",
                                           max_chars=self.max_chars, first_line=True)
