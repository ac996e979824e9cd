"""One candidate's way through the run: make the child, evaluate it, validate it.

``Engine`` holds the live parts of one execution (archive, benchmark, LLM
clients, strategies) and knows how to do each step for one candidate. The
loops in ``_loop.py`` decide *when* to do them; every decision about *what*
(which parent, which operator, which examples) is delegated to a strategy or
drawn from a generator keyed by the candidate's slot, so a resumed run makes
exactly the same choices.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive import (
    Candidate,
    ExampleScore,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
    Usage,
)
from fitness import Benchmark, Example, PromptEvaluator

from ._errors import LLMResponseError
from ._genome import PROMPT_KIND, PromptGenome
from .llm import LLMClient
from .operators import InvalidChild, Mutation, MutationContext, Operator
from .selection import Selection, Selector


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """The generator for one decision, derived from the run seed and a fixed key.

    The same stream as ``np.random.default_rng(SeedSequence(seed, spawn_key=key))``,
    without ``default_rng``'s argument dispatch.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


# keys of the derived generators (the first element of ``rng_for``'s key)
SELECT, CHILD, BATCH, INIT = 1, 2, 3, 4


@dataclass(frozen=True)
class Lexicon:
    """The seed lists the operators draw from."""

    thinking_styles: Sequence[str]
    mutation_prompts: Sequence[str]
    hyper_mutation_prompts: Sequence[str]


@dataclass(frozen=True)
class Child:
    """A child ready to be written to the archive as ``pending``."""

    new: NewCandidate
    retire: tuple[int, ...]


@dataclass
class Engine:
    """The live parts of one execution of a run, and the steps for one candidate."""

    storage: SQLiteStorage
    benchmark: Benchmark
    evaluator: PromptEvaluator
    mutator: LLMClient
    task: LLMClient
    selector: Selector
    operators: Mapping[str, Operator]
    weights: np.ndarray  # operator draw probabilities, in ``operators`` order
    lexicon: Lexicon
    seed: int
    batch_size: int
    validation_size: int | None
    mutator_max_tokens: int
    usage_before: Mapping[str, Usage]

    # -- accounting ------------------------------------------------------------------------
    def llm_usage(self) -> dict[str, Usage]:
        """Run totals per role: earlier executions plus this one's clients."""
        now = {"mutator": _client_usage(self.mutator), "task": _client_usage(self.task)}
        return {k: self.usage_before.get(k, Usage()) + v for k, v in now.items()}

    def tokens(self) -> int:
        return sum(u.tokens for u in self.llm_usage().values())

    def usage_meta(self) -> dict[str, Any]:
        return {"llm_usage": {k: u.to_dict() for k, u in self.llm_usage().items()}}

    # -- making children ---------------------------------------------------------------------
    def choose_operator(self, rng: np.random.Generator) -> Operator:
        """The same draw as ``rng.choice(len(operators), p=weights)``, without its checks."""
        return self._operator_list[bisect.bisect_right(self._operator_cdf, rng.random())]

    @functools.cached_property
    def _operator_list(self) -> list[Operator]:
        return list(self.operators.values())

    @functools.cached_property
    def _operator_cdf(self) -> list[float]:
        cdf = np.asarray(self.weights, dtype=float).cumsum()
        cdf /= cdf[-1]  # as numpy's Generator.choice computes it
        return cdf.tolist()

    def context(self, parent: Candidate, rng: np.random.Generator) -> MutationContext:
        return MutationContext(
            parent=parent,
            view=self.storage.index,
            rng=rng,
            llm=self.mutator,
            problem=self.benchmark.description,
            thinking_styles=self.lexicon.thinking_styles,
            mutation_prompts=self.lexicon.mutation_prompts,
            hyper_mutation_prompts=self.lexicon.hyper_mutation_prompts,
            correct_workings=self.correct_workings(parent),
            max_tokens=self.mutator_max_tokens,
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

    async def make_child(self, slot: int, selection: Selection, generation: int) -> Child:
        """Mutate the selected parent. An unusable result is a child marked invalid."""
        parent = self.storage.get(selection.parent)
        rng = rng_for(self.seed, CHILD, slot)
        operator = self.choose_operator(rng)
        started = time.perf_counter()
        try:
            mutation = await operator.mutate(self.context(parent, rng))
        except InvalidChild as exc:
            mutation = Mutation(PromptGenome.from_dict(parent.genome),
                                exchanges=tuple(getattr(exc, "exchanges", ())))
            invalid: str | None = str(exc)
        except LLMResponseError as exc:
            mutation = Mutation(PromptGenome.from_dict(parent.genome))
            invalid = f"mutator LLM gave no usable answer: {exc}"
        else:
            invalid = None
        return self._child(slot, generation, parent, operator.name, mutation, started,
                           invalid=invalid, retire=() if invalid else selection.retire)

    def _child(self, slot: int, generation: int, parent: Candidate, operator: str,
               mutation: Mutation, started: float, *, invalid: str | None,
               retire: tuple[int, ...]) -> Child:
        record: dict[str, Any] = {"exchanges": list(mutation.exchanges),
                                  "seconds": round(time.perf_counter() - started, 6)}
        if invalid is not None:
            record["invalid"] = invalid
        new = NewCandidate(
            slot=slot,
            kind=PROMPT_KIND,
            genome=mutation.genome.to_dict(),
            parent_ids=(parent.id, *mutation.extra_parents),
            operator=operator,
            generation=generation,
            mutation=record,
            usage=exchanges_usage(mutation.exchanges),
        )
        return Child(new, retire)

    def founder(self, slot: int, genome: PromptGenome, operator: str,
                exchanges: Sequence[Mapping[str, Any]] = ()) -> Child:
        """A generation-0 candidate (the seed prompt or an initial unit)."""
        return Child(NewCandidate(
            slot=slot, kind=PROMPT_KIND, genome=genome.to_dict(), operator=operator,
            generation=0, mutation={"exchanges": list(exchanges)},
            usage=exchanges_usage(exchanges)), ())

    # -- evaluating ------------------------------------------------------------------------------
    def training_batch(self, slot: int) -> list[Example]:
        train = self.benchmark.split("train")
        size = min(self.batch_size, len(train))
        picks = rng_for(self.seed, BATCH, slot).choice(len(train), size=size, replace=False)
        return [train[int(i)] for i in picks]

    async def evaluate(self, candidate: Candidate) -> Candidate:
        """Score a pending candidate on its training batch and record the result."""
        invalid = (candidate.mutation or {}).get("invalid")
        if invalid:
            return self.storage.finish_candidate(
                candidate.id, Status.INVALID, reason=invalid, meta=self.usage_meta())
        started = time.perf_counter()
        try:
            batch = self.training_batch(candidate.slot)
            score, usage = await self._score(candidate, "train", batch)
        except LLMResponseError as exc:
            return self.storage.finish_candidate(
                candidate.id, Status.FAILED, reason=f"task LLM gave no usable answer: {exc}",
                timings={"evaluate": time.perf_counter() - started}, meta=self.usage_meta())
        return self.storage.finish_candidate(
            candidate.id, Status.EVALUATED, scores=[score], usage=usage,
            timings={"evaluate": time.perf_counter() - started}, meta=self.usage_meta())

    async def validate(self, candidate: Candidate) -> Candidate:
        """Add the validation score of an evaluated candidate."""
        examples = list(self.benchmark.split("validation"))[: self.validation_size]
        score, usage = await self._score(candidate, "validation", examples)
        return self.storage.add_scores(candidate.id, score, usage)

    async def _score(self, candidate: Candidate, split: str,
                     examples: Sequence[Example]) -> tuple[SplitScore, Usage]:
        genome = PromptGenome.from_dict(candidate.genome)
        result = await self.evaluator.evaluate(
            genome.task_prompts, genome.context, examples, seed=candidate.slot)
        score = SplitScore(split, result.mean, tuple(
            ExampleScore(r.example_id, r.score, r.output) for r in result.results))
        usage = Usage(calls=result.calls - result.cache_hits, cache_hits=result.cache_hits,
                      prompt_tokens=result.prompt_tokens,
                      completion_tokens=result.completion_tokens)
        return score, usage

    def to_validate(self, top: int) -> list[Candidate]:
        """The best ``top`` evaluated candidates by training score without a validation score."""
        return [c for c in self.storage.index.top(top) if "validation" not in c.scores]


def exchanges_usage(exchanges: Sequence[Mapping[str, Any]]) -> Usage:
    """LLM usage recorded in a mutation's exchanges."""
    total = Usage()
    for ex in exchanges:
        cached = bool(ex.get("cached"))
        total = total + Usage(
            calls=0 if cached else 1, cache_hits=1 if cached else 0,
            prompt_tokens=0 if cached else int(ex.get("prompt_tokens", 0)),
            completion_tokens=0 if cached else int(ex.get("completion_tokens", 0)))
    return total


def _client_usage(client: LLMClient) -> Usage:
    s = client.stats()
    return Usage(calls=s.calls, cache_hits=s.cache_hits, prompt_tokens=s.prompt_tokens,
                 completion_tokens=s.completion_tokens)
