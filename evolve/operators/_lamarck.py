"""Lamarckian mutation: reverse-engineer a task prompt from a correct working-out.

One of the parent's correct answers on its training batch (question and the
model's full output) is shown, and the LLM is asked which instruction produced
it: good reasoning found by chance is written back into the genome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .._genome import PromptGenome
from .._schema import doc
from ._applicable import NotApplicable
from ._base import MutationContext, PromptOperator, Transcript, pick
from ._text import cap


def lamarckian_request(question: str, working: str) -> str:
    return ("Someone was given a short written instruction and then solved the problem "
            "below correctly.\n\n"
            f"PROBLEM:\n{question}\n\n"
            f"THEIR CORRECT WORKING-OUT:\n{working}\n\n"
            "What instruction were they most likely given? It must be general enough to "
            "help with other problems of the same kind. Reply with the instruction only.")


@dataclass(frozen=True, kw_only=True)
class Lamarckian(PromptOperator):
    """A task prompt inferred from one of the parent's correct working-outs."""

    name: ClassVar[str] = "lamarckian"
    max_working_chars: int = doc(
        "Longest question and working-out shown, each, in characters.", 1500)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_working_chars < 20:
            raise ValueError("max_working_chars must be at least 20")

    async def _rewrite(self, ctx: MutationContext, genome: PromptGenome, slot: int,
                       transcript: Transcript) -> str:
        if not ctx.correct_workings:
            raise NotApplicable("lamarckian: the parent has no correct working-out to learn "
                                "from", transcript.exchanges)
        question, working = pick(ctx.rng, ctx.correct_workings)
        request = lamarckian_request(cap(question.strip(), self.max_working_chars),
                                     cap(working.strip(), self.max_working_chars))
        return await transcript.ask_prompt(request, what="task prompt",
                                           max_chars=self.max_chars)
