"""``hyper_diff``: hypermutation for code — evolve the mutation prompt, then apply it.

First the mutation prompt itself is rewritten: by default (first order) a random
hyper-mutation prompt from the lexicon rewrites the parent's mutation prompt;
with probability ``zero_order_probability`` a new one is written from the task
alone (zero order). The answer is cleaned to one instruction
(``_text.clean_prompt``) and must differ from the parent's. Then a ``diff_edit``
is made with the new mutation prompt, and the child carries it, so good ways of
changing code are inherited along the lineage. The first request uses the
prompt operators' system message (it writes an instruction, not code). With
``constrained`` (the default) both answers are constrained while the model writes
them: the mutation prompt to one instruction of at most ``max_mutation_chars``
characters on one line (``Transcript.ask_prompt``), the diff as ``diff_edit``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archive import Failure

from ..._schema import doc
from ...operators import SYSTEM_PROMPT, Transcript, pick, same_text
from ._base import CodeMutationContext, parent_mutation_prompt
from ._diff_edit import DiffEdit


def code_hyper_request(hyper_mutation_prompt: str, mutation_prompt: str, problem: str) -> str:
    return (f"{hyper_mutation_prompt}\n\n"
            f"PROBLEM DESCRIPTION:\n{problem.strip()}\n\n"
            f"INSTRUCTION TO IMPROVE:\n{mutation_prompt}\n\n"
            "The instruction tells a programmer how to change a program that solves this "
            "problem. Reply with the improved instruction only.")


def code_zero_order_request(problem: str) -> str:
    return (f"PROBLEM DESCRIPTION:\n{problem.strip()}\n\n"
            "Write one instruction telling a programmer how to change a program that solves "
            "this problem so that it scores better. Reply with that instruction only.")


@dataclass(frozen=True, kw_only=True)
class HyperDiff(DiffEdit):
    """A new mutation prompt (from the parent's, or zero-order), then a diff edit with it."""

    name: ClassVar[str] = "hyper_diff"

    max_mutation_chars: int = doc(
        "Longest mutation prompt kept from an answer, in characters.", 500)
    zero_order_probability: float = doc(
        "Probability of writing the new mutation prompt from the task alone (zero order) "
        "instead of rewriting the parent's with a hyper-mutation prompt (first order).", 0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_mutation_chars < 20:
            raise ValueError("max_mutation_chars must be at least 20")
        if not 0.0 <= self.zero_order_probability <= 1.0:
            raise ValueError("zero_order_probability must be between 0 and 1")

    async def _mutation_prompt(self, ctx: CodeMutationContext,
                               transcript: Transcript) -> tuple[str, str]:
        old = parent_mutation_prompt(ctx)
        p = self.zero_order_probability
        if p >= 1.0 or (p > 0.0 and ctx.rng.random() < p):
            request = code_zero_order_request(ctx.problem)
        elif not ctx.hyper_mutation_prompts:
            raise transcript.reject("hyper_diff needs at least one hyper-mutation prompt")
        else:
            request = code_hyper_request(pick(ctx.rng, ctx.hyper_mutation_prompts), old,
                                         ctx.problem)
        new = await transcript.ask_prompt(request, what="mutation prompt",
                                          max_chars=self.max_mutation_chars, system=SYSTEM_PROMPT)
        if same_text(new, old):
            raise transcript.reject("the new mutation prompt is identical to the parent's",
                                    Failure.DUPLICATE)
        return new, "new mutation prompt; "
