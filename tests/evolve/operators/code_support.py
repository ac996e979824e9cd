"""Test helpers for the code-operator tests: code candidates and a context builder."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import numpy as np

from archive import ArchiveIndex, Candidate, SplitScore, Status, Usage
from evolve.code._genome import CodeGenome
from evolve.code.operators import CodeMutation, CodeMutationContext, CodeOperator

from .op_support import ScriptedLLM, index_of

PROBLEM = "Pack circles into the unit square to maximise the sum of their radii."
MP = "Make one small, targeted improvement."
HYPER = ("Improve this instruction.", "Make this instruction sharper.")


def code_candidate(cid: int, *, commit: str | None = None, mutation_prompt: str = MP,
                   fitness: float | None = 0.5, parents: Sequence[int] = ()) -> Candidate:
    scores = {"train": SplitScore("train", fitness)} if fitness is not None else {}
    return Candidate(
        id=cid, slot=cid, kind="code",
        genome=CodeGenome(commit or f"{cid:040x}", mutation_prompt).to_dict(),
        parent_ids=tuple(parents), operator="seed", generation=0,
        status=Status.EVALUATED if fitness is not None else Status.PENDING, reason=None,
        retired_by=None, scores=scores, mutation=None, usage=Usage(), timings={},
        descriptors={}, created_at=0.0, updated_at=0.0)


def code_context(trees: Mapping[int, Mapping[str, str]], llm: ScriptedLLM, *, parent: int = 1,
                 evolve_paths: Sequence[str] = ("solve.py",), seed: int = 0,
                 view: ArchiveIndex | None = None,
                 bases: Mapping[tuple[int, int], Mapping[str, str] | None] | None = None,
                 feedback: str = "score 0.40; example 3 failed: IndexError",
                 mutation_prompts: Sequence[str] = (MP,),
                 hyper_mutation_prompts: Sequence[str] = HYPER,
                 mutation_prompt: str = MP, max_tokens: int = 256,
                 temperature: float | None = 0.7) -> CodeMutationContext:
    """A context whose archive holds one code candidate per tree (fitness 0.5 unless ``view``)."""
    if view is None:
        view = index_of(*(code_candidate(cid, mutation_prompt=mutation_prompt)
                          for cid in sorted(trees)))
    bases = dict(bases or {})

    def merge_base(a: int, b: int) -> Mapping[str, str] | None:
        return bases.get((a, b))

    return CodeMutationContext(
        parent=view.get(parent), parent_files=dict(trees[parent]),
        evolve_paths=tuple(evolve_paths), view=view, rng=np.random.default_rng(seed), llm=llm,
        problem=PROBLEM, feedback=feedback, mutation_prompts=tuple(mutation_prompts),
        hyper_mutation_prompts=tuple(hyper_mutation_prompts),
        files_of=lambda cid: dict(trees[cid]), merge_base_files=merge_base,
        max_tokens=max_tokens, temperature=temperature)


def run_code(operator: CodeOperator, ctx: CodeMutationContext) -> CodeMutation:
    return asyncio.run(operator.mutate(ctx))


def fenced(text: str, lang: str = "python") -> str:
    return f"```{lang}\n{text}```"
