"""What evolves: the genome-specific half of the engine.

The ``Engine`` (``_engine.py``) does what every run does — choose the operator,
record the child, stage the evaluation, write the archive. A ``Species`` does
what depends on the genome: the founders, the operators' context, turning an
operator's result into a stored genome, and scoring a candidate on examples.
``PromptSpecies`` evolves task-prompts (Promptbreeder); ``CodeSpecies``
(``evolve/code/``) evolves programs and agents kept in git.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive import ArchiveIndex, Candidate, ExampleScore, Failure, SplitScore, Status, Usage
from fitness import Benchmark, Example, PromptEvaluator

from ._genome import PROMPT_KIND, PromptGenome
from ._text import prompt_text
from .operators import MutationContext, MutatorLLM, initial_population, normalise


@dataclass(frozen=True)
class Lexicon:
    """The seed lists the operators draw from."""

    thinking_styles: Sequence[str]
    mutation_prompts: Sequence[str]
    hyper_mutation_prompts: Sequence[str]


@dataclass(frozen=True)
class Founder:
    """A generation-0 candidate before it is written: its genome and how it was made."""

    genome: Mapping[str, Any]
    operator: str
    exchanges: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Failed:
    """Why an evaluation failed: the words, and their kind."""

    reason: str  # e.g. "timeout on all 4 examples: ..."
    kind: Failure


@dataclass(frozen=True)
class Scored:
    """A candidate's score on some examples, what it cost, and what went wrong.

    ``failure`` makes the candidate ``failed`` with that reason; its scores are
    still recorded.
    """

    score: SplitScore
    usage: Usage = Usage()
    failure: Failed | None = None


class Species(ABC):
    """The genome-specific steps; one instance per execution of a run."""

    kind: str

    @abstractmethod
    def split(self, name: str) -> Sequence[Example]:
        """The benchmark's examples of split ``name``."""

    @abstractmethod
    async def founders(self, rng: np.random.Generator, size: int) -> list[Founder]:
        """The generation-0 candidates (the seed first), at most ``size`` of them."""

    @abstractmethod
    def context(self, parent: Candidate, rng: np.random.Generator) -> Any:
        """What an operator gets to make a child of ``parent``."""

    @abstractmethod
    def genome(self, mutation: Any, parent: Candidate, slot: int) -> dict[str, Any]:
        """The stored genome of a valid child (materialised, e.g. committed to git)."""

    def invalid_genome(self, parent: Candidate) -> dict[str, Any]:
        """The genome recorded for an invalid child: the parent's, unchanged."""
        return dict(parent.genome)

    def fingerprint(self, genome: Mapping[str, Any]) -> str | None:
        """What ``genome`` is, normalised so that two candidates with equal fingerprints
        would be evaluated alike (the engine evaluates only the first; see
        ``Engine.make_child``). None: never a duplicate (the default)."""
        return None

    @abstractmethod
    async def score(self, candidate: Candidate, split: str,
                    examples: Sequence[Example]) -> Scored:
        """Score ``candidate`` on ``examples``; the result is recorded under ``split``."""

    def committed(self, candidates: Sequence[Candidate]) -> None:  # noqa: B027
        """Called once ``candidates`` are in the archive (code: keeps their commits alive)."""

    def genome_text(self, genome: Mapping[str, Any]) -> str | None:
        """The text that distances between genomes are measured on (None: none)."""
        return None

    def text_descriptors(self, genome: Mapping[str, Any], parent: Candidate | None
                         ) -> dict[str, float]:
        """Descriptors of the genome's text to record on the candidate when it is made
        (``_text.text_descriptors``; ``parent``: its first parent, None for a founder),
        for a genome whose record does not hold its text. Empty by default: a prompt
        genome's record is its text, and MAP-Elites reads it there."""
        return {}


class PromptSpecies(Species):
    """Task-prompts scored by the task model on a prompt benchmark."""

    kind = PROMPT_KIND

    def __init__(self, benchmark: Benchmark, evaluator: PromptEvaluator, mutator: MutatorLLM,
                 view: Any, lexicon: Lexicon, *, seed_prompt: str, task_prompts: int,
                 mutator_max_tokens: int, constrained_founders: bool = True,
                 mutator_context: int | None = None) -> None:
        self.benchmark = benchmark
        self.evaluator = evaluator
        self.mutator = mutator
        self.view = view
        self.lexicon = lexicon
        self.seed_prompt = seed_prompt
        self.task_prompts = task_prompts
        self.mutator_max_tokens = mutator_max_tokens
        self.constrained_founders = constrained_founders
        self.mutator_context = mutator_context

    def split(self, name: str) -> Sequence[Example]:
        return self.benchmark.split(name)

    def genome_text(self, genome: Mapping[str, Any]) -> str | None:
        """The task prompts and context, one per line (the mutation prompt does not
        change what a candidate answers)."""
        return prompt_text(genome)

    async def founders(self, rng: np.random.Generator, size: int) -> list[Founder]:
        lex = self.lexicon
        seed_mp = lex.mutation_prompts[int(rng.integers(len(lex.mutation_prompts)))]
        prompts = (self.seed_prompt,) * self.task_prompts
        founders = [Founder(PromptGenome(prompts, seed_mp).to_dict(), "seed")]
        units = await initial_population(
            size=size - 1, problem=self.benchmark.description,
            thinking_styles=lex.thinking_styles, mutation_prompts=lex.mutation_prompts,
            llm=self.mutator, rng=rng, n_task_prompts=self.task_prompts,
            max_tokens=self.mutator_max_tokens, constrained=self.constrained_founders)
        return founders + [Founder(u.genome.to_dict(), "init", u.exchanges) for u in units]

    def context(self, parent: Candidate, rng: np.random.Generator) -> MutationContext:
        return MutationContext(
            parent=parent,
            view=self.view,
            rng=rng,
            llm=self.mutator,
            problem=self.benchmark.description,
            thinking_styles=self.lexicon.thinking_styles,
            mutation_prompts=self.lexicon.mutation_prompts,
            hyper_mutation_prompts=self.lexicon.hyper_mutation_prompts,
            correct_workings=self.correct_workings(parent),
            max_tokens=self.mutator_max_tokens,
            attempts=failed_attempts(self.view, parent, worse=_worse_prompt),
            context_tokens=self.mutator_context,
        )

    def correct_workings(self, candidate: Candidate) -> list[tuple[str, str]]:
        train = candidate.scores.get("train")
        if train is None:
            return []
        questions = self.train_by_id
        return [(questions[e.example_id].question, e.output)
                for e in train.examples if e.score >= 1.0 and e.example_id in questions]

    @functools.cached_property
    def train_by_id(self) -> dict[str, Example]:
        return {e.id: e for e in self.benchmark.split("train")}

    def genome(self, mutation: Any, parent: Candidate, slot: int) -> dict[str, Any]:
        return mutation.genome.to_dict()

    def fingerprint(self, genome: Mapping[str, Any]) -> str | None:
        """The task prompts as the task model sees them, up to case, spacing and edge
        punctuation (``normalise``), and the context; the mutation prompt is left out (it
        does not change a score)."""
        g = PromptGenome.from_dict(genome)
        key = json.dumps([[normalise(p) for p in g.task_prompts], list(g.context)])
        return hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=16).hexdigest()

    async def score(self, candidate: Candidate, split: str,
                    examples: Sequence[Example]) -> Scored:
        genome = PromptGenome.from_dict(candidate.genome)
        result = await self.evaluator.evaluate(
            genome.task_prompts, genome.context, examples, seed=candidate.slot)
        score = SplitScore(split, result.mean, tuple(
            ExampleScore(r.example_id, r.score, r.output) for r in result.results))
        usage = Usage(calls=result.calls - result.cache_hits, cache_hits=result.cache_hits,
                      prompt_tokens=result.prompt_tokens,
                      completion_tokens=result.completion_tokens)
        return Scored(score, usage)


#: most children of a parent listed as attempts in its context, and the longest line shown
ATTEMPTS_KEPT, ATTEMPT_CHARS = 8, 240


def failed_attempts(view: ArchiveIndex, parent: Candidate, *,
                    worse: Any = None) -> list[str]:
    """The parent's latest children that did not pay off, newest first, one line each
    (cut to ``ATTEMPT_CHARS``): those not valid (invalid or failed) as
    "operator (failure kind): reason", and, given ``worse(child, parent)``, those that
    scored below the parent, as it describes them."""
    out: list[str] = []
    parent_score = parent.score("train")
    for cid in reversed(view.children(parent.id)):
        child = view.get(cid)
        line = None
        if child.status in (Status.INVALID, Status.FAILED) and child.reason:
            kind = child.failure.value if child.failure is not None else child.status.value
            line = f"{child.operator} ({kind}): {child.reason}"
        elif (worse is not None and parent_score is not None
              and child.status is Status.EVALUATED
              and (child.score("train") or 0.0) < parent_score):
            line = worse(child, parent)
        if line:
            line = " ".join(line.split())
            out.append(line if len(line) <= ATTEMPT_CHARS else line[: ATTEMPT_CHARS - 3] + "...")
            if len(out) == ATTEMPTS_KEPT:
                break
    return out


def _worse_prompt(child: Candidate, parent: Candidate) -> str:
    """A prompt child that scored below its parent: what it said and how it did."""
    prompts = child.genome.get("task_prompts") or ()
    text = " / ".join(str(p) for p in prompts)
    return (f'"{text}" scored {child.score("train"):.2f}, below the '
            f'{parent.score("train"):.2f} of the current instruction')
