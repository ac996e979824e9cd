"""Programs and agents as genomes: commits in the run's git repository, scored in sandboxes.

A code candidate's files live in git (``RunRepo``); the archive keeps the
commit and the mutation prompt. Children are committed with their parents'
commits as git parents and a timestamp derived from their slot, so a replayed
generation makes the same commits; the ref ``refs/candidates/<id>`` is set
once the archive holds the candidate (``committed``), and a crash between the
two is repaired on the next open (``RunRepo.reconcile``).

Scoring runs the benchmark's trusted evaluation through the run's sandbox
executor; agents get a gateway session of their own, metered and budgeted,
whose usage is recorded with the candidate.

A child's file names must be ones every sandbox can write
(``sandboxes.job_files_problem``: no component over 255 bytes, no path over
4095, at most 64 levels); git would take longer ones, so a child naming such a
file is invalid with that reason, before it is committed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import numpy as np

from archive import ArchiveIndex, Candidate, ExampleScore, Failure, SplitScore, Usage
from fitness import Example
from fitness.code import CodeBenchmark, EvaluationEnv, ProgramEvaluation
from sandboxes import EndReason, Executor, LLMGateway, job_files_problem

from .._species import Failed, Founder, Lexicon, Scored, Species, failed_attempts
from .._text import text_descriptors
from ..operators import InvalidChild, MutatorLLM
from ._gateway_bridge import gateway_usage
from ._genome import CODE_KIND, CodeGenome
from ._repo import RunRepo
from ._workshop import Workshop
from .operators import CodeMutationContext

#: commit time of the seed; a child's is this plus its slot (deterministic commits)
EPOCH = 1_700_000_000
_FEEDBACK_CHARS = 2000


class CodeSpecies(Species):
    """Code candidates of a ``CodeBenchmark``, kept in ``repo`` and run through ``executor``.

    ``gateway`` serves the task model to agents (``benchmark.needs_llm``), each
    evaluation in its own session with ``token_budget`` tokens. ``workshop``
    lets the self-modification operator run an agent on its own code;
    ``extra_seed_files`` are added to the benchmark's seed files (e.g. the
    agents' ``self_improve.py``) and evolve with them.
    """

    kind = CODE_KIND

    def __init__(self, benchmark: CodeBenchmark, repo: RunRepo, executor: Executor,
                 mutator: MutatorLLM, view: ArchiveIndex, lexicon: Lexicon, *,
                 gateway: LLMGateway | None, token_budget: int | None,
                 mutator_max_tokens: int, mutator_context: int | None = None,
                 workshop: Workshop | None = None,
                 extra_seed_files: Mapping[str, str] | None = None) -> None:
        self.benchmark = benchmark
        self.repo = repo
        self.executor = executor
        self.mutator = mutator
        self.view = view
        self.lexicon = lexicon
        self.gateway = gateway
        self.token_budget = token_budget
        self.mutator_max_tokens = mutator_max_tokens
        self.mutator_context = mutator_context
        self.workshop = workshop
        self.extra_seed_files = dict(extra_seed_files or {})
        # a commit's files never change: the monitor and MAP-Elites read each one once
        self._commit_text = functools.lru_cache(maxsize=8192)(self._read_commit_text)

    def split(self, name: str) -> Sequence[Example]:
        return self.benchmark.split(name)

    # -- making ------------------------------------------------------------------------------
    async def founders(self, rng: np.random.Generator, size: int) -> list[Founder]:
        """The benchmark's seed program (one founder: evolution grows the population)."""
        prompts = self.lexicon.mutation_prompts
        files = {**self.extra_seed_files, **self.benchmark.seed_files()}
        commit = self.repo.commit(files, (), "seed", EPOCH)
        prompt = prompts[int(rng.integers(len(prompts)))]
        return [Founder(CodeGenome(commit, prompt).to_dict(), "seed")]

    def context(self, parent: Candidate, rng: np.random.Generator) -> CodeMutationContext:
        return CodeMutationContext(
            parent=parent,
            parent_files=self.text_files(parent.id),
            evolve_paths=self.evolve_paths(),
            view=self.view,
            rng=rng,
            llm=self.mutator,
            problem=self.benchmark.description,
            feedback=feedback(parent),
            mutation_prompts=self.lexicon.mutation_prompts,
            hyper_mutation_prompts=self.lexicon.hyper_mutation_prompts,
            files_of=self.text_files,
            merge_base_files=self.merge_base_files,
            max_tokens=self.mutator_max_tokens,
            context_tokens=self.mutator_context,
            workshop=self.workshop,
            attempts=failed_attempts(self.view, parent),
        )

    def evolve_paths(self) -> tuple[str, ...]:
        extra = tuple(p for p in sorted(self.extra_seed_files)
                      if p not in self.benchmark.seed_files())
        return self.benchmark.evolve_paths() + extra

    def text_files(self, candidate_id: int) -> dict[str, str]:
        return self.repo.text_files(self.commit_of(candidate_id))

    def genome_text(self, genome: Mapping[str, Any]) -> str | None:
        """The files that may evolve, path and text, in path order."""
        return self._commit_text(CodeGenome.from_dict(genome).commit)

    def text_descriptors(self, genome: Mapping[str, Any], parent: Candidate | None
                         ) -> dict[str, float]:
        """The program's length, distance to its root's program and SimHash (a code
        genome's record holds a commit, not the files MAP-Elites would read)."""
        text = self.genome_text(genome) or ""
        if parent is None:
            return text_descriptors(text, text)
        root = self.view.get(self.view.descent(parent.id)[-1])
        return text_descriptors(text, self.genome_text(root.genome) or "")

    def _read_commit_text(self, commit: str) -> str:
        files = self.repo.text_files(commit)
        return "\n".join(f"{p}\n{files[p]}" for p in sorted(self.evolve_paths()) if p in files)

    def commit_of(self, candidate_id: int) -> str:
        return CodeGenome.from_dict(self.view.get(candidate_id).genome).commit

    def merge_base_files(self, a: int, b: int) -> dict[str, str] | None:
        base = self.repo.merge_base(self.commit_of(a), self.commit_of(b))
        return None if base is None else self.repo.text_files(base)

    def genome(self, mutation: Any, parent: Candidate, slot: int) -> dict[str, Any]:
        problem = job_files_problem({path: b"" for path in mutation.files})
        if problem:
            raise InvalidChild(f"the child's files cannot be run: {problem}", mutation.exchanges)
        parents = [self.commit_of(parent.id), *map(self.commit_of, mutation.extra_parents)]
        message = mutation.message or "mutation"
        commit = self.repo.commit(mutation.files, parents, f"#{slot}: {message}", EPOCH + slot)
        return CodeGenome(commit, mutation.mutation_prompt).to_dict()

    def fingerprint(self, genome: Mapping[str, Any]) -> str | None:
        """The commit's tree: the same files, whatever the commit's history or message."""
        return f"tree:{self.repo.tree(CodeGenome.from_dict(genome).commit)}"

    def committed(self, candidates: Sequence[Candidate]) -> None:
        for c in candidates:
            self.repo.set_ref(c.id, CodeGenome.from_dict(c.genome).commit)

    # -- scoring -----------------------------------------------------------------------------
    async def score(self, candidate: Candidate, split: str,
                    examples: Sequence[Example]) -> Scored:
        files = self.repo.files(CodeGenome.from_dict(candidate.genome).commit)
        async with AsyncExitStack() as stack:
            session = None
            if self.benchmark.needs_llm and self.gateway is not None:
                session = await stack.enter_async_context(self.gateway.session(
                    f"{candidate.id}:{split}", token_budget=self.token_budget,
                    seed=candidate.slot))
            env = EvaluationEnv(self.executor, session.socket_path if session else None)
            evaluation = await self.benchmark.evaluate(files, examples, env)
        usage = gateway_usage(session.usage) if session is not None else Usage()
        return Scored(split_score(split, evaluation), usage, failure_of(evaluation))


def split_score(split: str, evaluation: ProgramEvaluation) -> SplitScore:
    """Per-example scores; each example's "output" is what a reader needs (reason, detail)."""
    return SplitScore(split, evaluation.mean, tuple(
        ExampleScore(r.example_id, r.score,
                     r.detail if r.reason is EndReason.OK else f"{r.reason}: {r.detail}".strip())
        for r in evaluation.results))


#: the failure kind of a run that ended for each reason other than OK
_FAILURE_KINDS = {EndReason.EXIT: Failure.RUNTIME_ERROR, EndReason.TIMEOUT: Failure.TIMEOUT,
                  EndReason.OOM: Failure.RESOURCE_LIMIT, EndReason.PIDS: Failure.RESOURCE_LIMIT,
                  EndReason.OUTPUT_LIMIT: Failure.RESOURCE_LIMIT,
                  EndReason.ERROR: Failure.SANDBOX_ERROR}


def failure_of(evaluation: ProgramEvaluation) -> Failed | None:
    """Why no example ran to completion (crash, timeout, limit), or None when one did; its
    kind is the first example's."""
    results = evaluation.results
    if not results or any(r.reason is EndReason.OK for r in results):
        return None
    first = results[0]
    return Failed((f"{first.reason} on all {len(results)} example(s): "
                   f"{first.detail or 'no detail'}")[:_FEEDBACK_CHARS],
                  _FAILURE_KINDS.get(first.reason, Failure.RUNTIME_ERROR))


def feedback(candidate: Candidate) -> str:
    """What the operators learn from a parent's evaluation: its scores, failures, details."""
    lines = []
    if candidate.reason:
        lines.append(f"The evaluation failed: {candidate.reason}")
    for split, score in sorted(candidate.scores.items()):
        if split.startswith("stage"):
            continue
        lines.append(f"{split} score: {score.mean:.4f} (0 to 1)")
        for e in score.examples[:8]:
            detail = f": {e.output}" if e.output else ""
            lines.append(f"- {e.example_id}: {e.score:.3f}{detail}")
    text = "\n".join(lines) or "Not evaluated yet."
    return text[:_FEEDBACK_CHARS]
