"""``full_rewrite``: the mutator LLM writes one evolvable file anew.

One evolvable file of the parent is chosen uniformly at random; the request
shows it (other files follow for reference) with the parent's mutation prompt,
the task and the feedback, and asks for the complete new file in one fenced
code block. The largest fenced block of the answer is taken (the last of equally
large ones); an answer without a closed, non-empty block is invalid. A file with
EVOLVE-BLOCK regions must keep its text outside them exactly; a ``.py`` file
must compile; the new file must differ from the old. With ``constrained`` (the
default) the server makes the model write one fenced file whose text outside the
EVOLVE-BLOCK regions is the parent's (``_grammars``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...operators import pick
from ._base import (
    CodeMutation,
    CodeMutationContext,
    LLMCodeOperator,
    code_transcript,
    editable_files,
    finish,
    language,
    parent_mutation_prompt,
)
from ._grammars import rewrite_grammar
from ._patch import PatchError, code_from_answer


def rewrite_format(path: str) -> str:
    return ("## Answer format\n"
            f"Answer with the complete new content of {path} in one ```{language(path)} code "
            "block, and nothing else. Write the whole file: it replaces the current one.")


@dataclass(frozen=True, kw_only=True)
class FullRewrite(LLMCodeOperator):
    """One evolvable file, chosen at random, rewritten whole by the mutator."""

    name: ClassVar[str] = "full_rewrite"

    async def mutate(self, ctx: CodeMutationContext) -> CodeMutation:
        path = pick(ctx.rng, editable_files(ctx))
        mutation_prompt = parent_mutation_prompt(ctx)
        transcript = code_transcript(ctx, constrained=self.constrained)
        grammar = (rewrite_grammar(path, ctx.parent_files[path], language(path))
                   if self.constrained else None)

        def child(answer: str) -> CodeMutation:
            try:
                code = code_from_answer(answer)
            except PatchError as exc:
                raise transcript.reject(exc.reason, exc.failure) from None
            old = ctx.parent_files[path]
            files = {**ctx.parent_files, path: code}
            lines = f"{len(old.splitlines())} -> {len(code.splitlines())} lines"
            return finish(transcript, ctx, files, who="the rewrite",
                          mutation_prompt=mutation_prompt,
                          message=f"{self.name}: rewrote {path} ({lines})")

        return await self.child_from_answers(
            transcript, self.request(ctx, mutation_prompt, [path], rewrite_format(path)),
            grammar, child)
