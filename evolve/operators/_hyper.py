"""Hypermutation: evolve the mutation prompt itself, then use it.

Both operators first make a new mutation prompt and then apply it to a task
prompt exactly as ``first_order_direct`` does; the child carries the new
mutation prompt, so good ways of mutating are inherited along the lineage.

- ``zero_order_hyper``: from the problem description and a random thinking
  style (the old mutation prompt is not shown);
- ``first_order_hyper``: a random hyper-mutation prompt rewrites the parent's
  mutation prompt.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar

from archive import Failure

from .._genome import PromptGenome
from .._schema import doc
from ._base import InvalidChild, MutationContext, Transcript, pick
from ._direct import FirstOrderDirect
from ._text import same_text


def zero_order_hyper_request(thinking_style: str, problem: str) -> str:
    return (f"{thinking_style}\n\n"
            f"Problem description:\n{problem}\n\n"
            "Write one instruction telling an assistant how to rewrite a prompt for this "
            "problem so that the prompt works better. Reply with that instruction only.")


def first_order_hyper_request(hyper_mutation_prompt: str, mutation_prompt: str) -> str:
    return (f"{hyper_mutation_prompt}\n\n"
            f"INSTRUCTION TO IMPROVE:\n{mutation_prompt}\n\n"
            "Reply with the improved instruction only.")


@dataclass(frozen=True, kw_only=True)
class _Hyper(FirstOrderDirect):
    max_mutation_chars: int = doc(
        "Longest mutation prompt kept from an answer, in characters.", 500)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_mutation_chars < 20:
            raise ValueError("max_mutation_chars must be at least 20")

    async def _prepare(self, ctx: MutationContext, genome: PromptGenome,
                       transcript: Transcript) -> PromptGenome:
        request = self._request(ctx, genome)
        new = await transcript.ask_prompt(request, what="mutation prompt",
                                          max_chars=self.max_mutation_chars)
        if same_text(new, genome.mutation_prompt):
            raise transcript.reject("the new mutation prompt is identical to the parent's",
                                    Failure.DUPLICATE)
        return replace(genome, mutation_prompt=new)

    @abstractmethod
    def _request(self, ctx: MutationContext, genome: PromptGenome) -> str:
        """The request for the new mutation prompt."""


@dataclass(frozen=True, kw_only=True)
class ZeroOrderHyper(_Hyper):
    """A new mutation prompt from the problem and a thinking style, then applied."""

    name: ClassVar[str] = "zero_order_hyper"

    def _request(self, ctx: MutationContext, genome: PromptGenome) -> str:
        if not ctx.thinking_styles:
            raise InvalidChild("zero_order_hyper needs at least one thinking style")
        return zero_order_hyper_request(pick(ctx.rng, ctx.thinking_styles), ctx.problem)


@dataclass(frozen=True, kw_only=True)
class FirstOrderHyper(_Hyper):
    """The parent's mutation prompt rewritten by a hyper-mutation prompt, then applied."""

    name: ClassVar[str] = "first_order_hyper"

    def _request(self, ctx: MutationContext, genome: PromptGenome) -> str:
        if not ctx.hyper_mutation_prompts:
            raise InvalidChild("first_order_hyper needs at least one hyper-mutation prompt")
        return first_order_hyper_request(pick(ctx.rng, ctx.hyper_mutation_prompts),
                                         genome.mutation_prompt)
