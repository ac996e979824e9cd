"""``diff_edit``: the mutator LLM answers with SEARCH/REPLACE blocks that are applied exactly.

The request is the parent's mutation prompt, the task, the parent's evaluation
feedback and the evolvable files with their paths (read-only files follow for
reference), then the answer format. The answer must hold one or more blocks::

    path/to/file.py
    <<<<<<< SEARCH
    exact old lines
    =======
    new lines
    >>>>>>> REPLACE

(the path line may be left out when one file may evolve). With ``constrained``
(the default) the server makes the model write exactly this shape, with SEARCH
text made of whole lines of the parent's editable regions (``_grammars``), so
every block applies. Parsing and applying
are the pure functions of ``_code_patch``; the child is invalid when no block
parses, a SEARCH text is not found or matches several places, a block targets a
file that may not evolve, an edit changes text outside the EVOLVE-BLOCK regions
(or the markers), the result equals the parent, or a ``.py`` file no longer
compiles. An answer cut off at ``max_tokens`` keeps the blocks written whole,
and a block searching for the same text as an earlier one is dropped (the first
version of an edit is kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..._grammar import Grammar
from ..._schema import doc
from ...operators import Transcript
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
from ._grammars import diff_grammar
from ._patch import (
    PatchError,
    apply_blocks,
    complete_part,
    parse_blocks,
    resolve_path,
    without_repeats,
)


def diff_format(paths: Sequence[str]) -> str:
    """The answer-format section of a diff request (the example names ``paths[0]``)."""
    path = paths[0]
    lang = language(path)
    head = (f"Answer with one or more SEARCH/REPLACE blocks and nothing else. Each block names "
            f"the file it changes (one of: {', '.join(paths)}), then copies lines from it "
            "exactly (SEARCH) and gives the lines that replace them (REPLACE). For example:")
    example = (("def area(r):\n    return 3.14 * r * r\n",
                "def area(r):\n    return math.pi * r * r\n")
               if lang == "python" else ("old line\n", "new line\n"))
    return (f"## Answer format\n{head}\n\n{path}\n<<<<<<< SEARCH\n{example[0]}=======\n"
            f"{example[1]}>>>>>>> REPLACE\n\n"
            "The SEARCH lines must match the file exactly, indentation included, and occur "
            "only once in it: copy whole lines, enough of them to be unique. Keep blocks small; "
            "use several blocks for changes in several places.")


@dataclass(frozen=True, kw_only=True)
class DiffEdit(LLMCodeOperator):
    """Targeted edits: SEARCH/REPLACE blocks from the mutator, applied exactly."""

    name: ClassVar[str] = "diff_edit"

    tolerant: bool = doc(
        "When a SEARCH text is not found exactly, accept a unique match that ignores "
        "trailing whitespace, then one that differs only by a uniform indentation (the "
        "REPLACE lines are re-indented alike).", True)
    max_blocks: int = doc(
        "Most SEARCH/REPLACE blocks accepted from one answer; an answer with more is "
        "invalid.", 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_blocks < 1:
            raise ValueError("max_blocks must be at least 1")

    async def mutate(self, ctx: CodeMutationContext) -> CodeMutation:
        paths = editable_files(ctx)
        transcript = code_transcript(ctx, constrained=self.constrained)
        mutation_prompt, note = await self._mutation_prompt(ctx, transcript)

        def child(answer: str) -> CodeMutation:
            if transcript.exchanges[-1].get("finish_reason") == "length":
                answer = complete_part(answer) or answer  # cut off: the blocks written whole
            try:
                blocks = parse_blocks(answer)
                if len(blocks) > self.max_blocks:
                    raise PatchError(f"the answer holds {len(blocks)} SEARCH/REPLACE blocks "
                                     f"(at most {self.max_blocks} are accepted)")
                blocks = without_repeats(blocks)
                files = apply_blocks(ctx.parent_files, blocks, ctx.evolve_paths,
                                     tolerant=self.tolerant)
            except PatchError as exc:
                raise transcript.reject(exc.reason, exc.failure) from None
            touched = sorted({resolve_path(b, ctx.evolve_paths, ctx.parent_files)
                              for b in blocks})
            count = f"{len(blocks)} block{'s' if len(blocks) > 1 else ''}"
            return finish(transcript, ctx, files, who="the edit",
                          mutation_prompt=mutation_prompt,
                          message=f"{self.name}: {note}{count} in {', '.join(touched)}")

        return await self.child_from_answers(
            transcript, self.request(ctx, mutation_prompt, paths, diff_format(paths)),
            self._grammar(ctx, paths), child)

    def _grammar(self, ctx: CodeMutationContext, paths: Sequence[str]) -> Grammar | None:
        """Blocks that search whole lines of the parent's editable regions (None when
        unconstrained, or when no line there is unique enough to search for)."""
        if not self.constrained:
            return None
        try:
            return diff_grammar(ctx.parent_files, paths, self.max_blocks)
        except ValueError:
            return None

    async def _mutation_prompt(self, ctx: CodeMutationContext,
                               transcript: Transcript) -> tuple[str, str]:
        """The mutation prompt to apply (and carry), and a note for the commit message."""
        return parent_mutation_prompt(ctx), ""
