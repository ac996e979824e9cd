"""One candidate's way through the run: make the child, evaluate it, validate it.

``Engine`` holds the live parts of one execution (archive, species, LLM
clients, strategies) and knows how to do each step for one candidate; what
depends on the genome (prompt or code) is the species' business. The
loops in ``_loop.py`` decide *when* to do them; every decision about *what*
(which parent, which operator, which examples) is delegated to a strategy or
drawn from the run's stream keyed by the candidate's slot (``_streams.py``), so
a resumed run makes exactly the same choices. Everything written to the archive
goes through the run's ``ArchiveWriter`` (group commit).

The engine is the one boundary where a candidate's misdeeds stop (as Optuna's
``_run_trial`` is for a trial): whatever a candidate makes trusted code raise
while its child is made, scored or validated ends as a record of that candidate
(invalid, failed, a validation score of 0) with the exception as the reason,
and the run goes on. An LLM failure after the client's retries is such a
record too (a timeout, a 5xx, a rejected request: ``_llm_failures``), unless it
will recur for every candidate (the server cannot be reached at all). Only the
errors a user must fix (``USER_ERRORS``: a bad config, an unusable benchmark or
sandbox, an LLM server that is down) stop the run with their message;
``KeyboardInterrupt`` and cancellation pass through.
An exception turned into a record is also logged once with its traceback, so a
bug in trusted code stays visible.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archive import (
    AddScores,
    Candidate,
    ExampleScore,
    Failure,
    Finish,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
    Usage,
)
from fitness import BenchmarkError, Example
from sandboxes import SandboxError

from ._config import StageConfig
from ._errors import CladeforgeError, LLMError, LLMResponseError
from ._llm_failures import failure_kind, stops_the_run
from ._novelty import ArchiveNovelty
from ._species import Failed, Founder, Scored, Species
from ._streams import BATCH, CHILD, RESCORE, Streams
from ._writer import ArchiveWriter
from .llm import LLMClient
from .operators import InvalidChild, NotApplicable
from .selection import Selection, Selector

logger = logging.getLogger(__name__)

#: Errors a user can cause and must fix: they stop the run (see the module doc).
USER_ERRORS: tuple[type[Exception], ...] = (CladeforgeError, BenchmarkError, SandboxError)
#: Longest reason recorded for an exception turned into a candidate's failure.
_REASON_CHARS = 1000


@dataclass(frozen=True)
class Child:
    """A child ready to be written to the archive as ``pending``."""

    new: NewCandidate
    retire: tuple[int, ...]


@dataclass
class Engine:
    """The live parts of one execution of a run, and the steps for one candidate."""

    storage: SQLiteStorage  # read through its index; written through ``writer``
    writer: ArchiveWriter
    species: Species
    mutator: LLMClient
    task: LLMClient | None  # None: the run does not use the task model
    selector: Selector
    operators: Mapping[str, Any]  # Operator or CodeOperator, by name
    weights: np.ndarray  # operator draw probabilities, in ``operators`` order
    streams: Streams  # the run's random streams, one per decision
    batch_size: int
    validation_size: int | None
    usage_before: Mapping[str, Usage]
    stages: Sequence[StageConfig] = ()
    #: fingerprint -> slot of the valid children this execution made (the archive's
    #: index knows those already written; these also cover the ones not written yet)
    made: dict[str, int] = field(default_factory=dict)
    #: the collapse monitor's warning after its last reading (None: no signature seen)
    collapse_warning: str | None = None
    #: novelty rejection (None: off)
    novelty: ArchiveNovelty | None = None

    # -- accounting ------------------------------------------------------------------------
    def llm_usage(self) -> dict[str, Usage]:
        """Run totals per role: earlier executions plus this one's clients."""
        now = {"mutator": _client_usage(self.mutator),
               "task": Usage() if self.task is None else _client_usage(self.task)}
        return {k: self.usage_before.get(k, Usage()) + v for k, v in now.items()}

    def tokens(self) -> int:
        return sum(u.tokens for u in self.llm_usage().values())

    def usage_meta(self) -> dict[str, Any]:
        return {"llm_usage": {k: u.to_dict() for k, u in self.llm_usage().items()}}

    # -- making children ---------------------------------------------------------------------
    def choose_operator(self, rng: np.random.Generator) -> Any:
        """The same draw as ``rng.choice(len(operators), p=weights)``, without its checks."""
        return self._operator_list[bisect.bisect_right(self._operator_cdf, rng.random())]

    @functools.cached_property
    def _operator_list(self) -> list[Any]:
        return list(self.operators.values())

    @functools.cached_property
    def _operator_cdf(self) -> list[float]:
        cdf = np.asarray(self.weights, dtype=float).cumsum()
        cdf /= cdf[-1]  # as numpy's Generator.choice computes it
        return cdf.tolist()

    async def make_child(self, slot: int, selection: Selection, generation: int) -> Child:
        """Mutate the selected parent. An unusable result is a child marked invalid.

        An operator that cannot apply to this parent or population (``NotApplicable``,
        e.g. a merge with no second member) gives way to another drawn among the enabled
        operators that have not declined, so each is tried at most once; when none can
        apply, the child is invalid with every operator's reason.

        A child whose fingerprint (``Species.fingerprint``) equals an earlier candidate's
        that is not invalid (its parent's, or any other in the archive, or one made earlier
        in this generation) is invalid as a ``duplicate`` of it, and not evaluated again;
        the mutation record names its slot (``duplicate_of_slot``), ``evaluate`` its id.
        """
        parent = self.storage.get(selection.parent)
        rng = self.streams(CHILD, slot)
        operator = self.choose_operator(rng)
        started = time.perf_counter()
        declined: dict[str, str] = {}  # operator name -> why it cannot apply here
        spent: list[Mapping[str, Any]] = []  # exchanges of the operators that declined
        exchanges: Sequence[Mapping[str, Any]] = ()
        extra_parents: tuple[int, ...] = ()
        invalid: str | None = None
        failure = Failure.INVALID_OUTPUT  # the kind of ``invalid``
        while True:
            try:
                mutation = await operator.mutate(self.species.context(parent, rng))
                genome = self.species.genome(mutation, parent, slot)
                exchanges, extra_parents = mutation.exchanges, mutation.extra_parents
            except NotApplicable as exc:
                spent += exc.exchanges
                declined[operator.name] = exc.reason
                following = self.redraw_operator(rng, declined)
                if following is not None:
                    operator = following
                    continue
                invalid = (f"no enabled operator can apply to #{parent.id}: "
                           + "; ".join(_named(n, r) for n, r in declined.items()))
                failure = Failure.NOT_APPLICABLE
            except InvalidChild as exc:
                exchanges, invalid, failure = exc.exchanges, str(exc), exc.failure
            except LLMResponseError as exc:
                invalid, failure = f"mutator LLM gave no usable answer: {exc}", Failure.LLM_ERROR
            except LLMError as exc:
                if stops_the_run(exc):
                    raise
                invalid, failure = f"mutator LLM failed: {exc}", failure_kind(exc)
            except USER_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - the boundary: see the module doc
                invalid = unexpected(exc, "making the child", slot)
                failure = Failure.INTERNAL
            break
        fingerprint = None if invalid is not None else self.species.fingerprint(genome)
        duplicate_of = self.earlier_with(fingerprint)
        near = None
        if duplicate_of is not None:
            invalid, failure = "the child equals an earlier candidate", Failure.DUPLICATE
        elif fingerprint is not None:
            near = (await self.novelty.check(genome, slot)
                    if self.novelty is not None else None)
            if near is not None:
                invalid = (f"the child is {near[1]:.2f} similar to an earlier candidate "
                           f"(novelty threshold {self.novelty.threshold:g})")
                failure = Failure.NEAR_DUPLICATE
            else:
                self.made.setdefault(fingerprint, slot)
        if invalid is not None:
            genome, fingerprint = self.species.invalid_genome(parent), None
        exchanges = [*spent, *exchanges]
        record: dict[str, Any] = {"exchanges": exchanges,
                                  "seconds": round(time.perf_counter() - started, 6)}
        if duplicate_of is not None:
            record["duplicate_of_slot"] = duplicate_of
        if near is not None:
            record["near_duplicate_of_slot"], record["similarity"] = near[0], round(near[1], 4)
        if declined:
            record["declined"] = declined
        repairs = sum(1 for ex in exchanges if ex.get("repair"))
        if repairs:
            record["repairs"] = repairs  # answers sent back with their error (``follow_up``)
        if invalid is not None:
            record["invalid"] = invalid
            record["failure"] = failure.value
        described = {} if invalid is not None else self.species.text_descriptors(genome, parent)
        return Child(NewCandidate(
            slot=slot, kind=self.species.kind, genome=genome,
            parent_ids=(parent.id, *extra_parents), operator=operator.name,
            generation=generation, mutation=record, usage=exchanges_usage(exchanges),
            descriptors={**described, **selection.descriptors}, fingerprint=fingerprint,
        ), () if invalid else selection.retire)

    def earlier_with(self, fingerprint: str | None) -> int | None:
        """The slot of the first candidate, not invalid, with ``fingerprint`` (None: none)."""
        if fingerprint is None:
            return None
        earlier = self.storage.index.with_fingerprint(fingerprint)
        return earlier.slot if earlier is not None else self.made.get(fingerprint)

    def redraw_operator(self, rng: np.random.Generator, declined: Collection[str]) -> Any:
        """An operator drawn by weight among the enabled ones not named in ``declined``;
        None when every one is."""
        weights = np.where([op.name in declined for op in self._operator_list], 0.0,
                           np.asarray(self.weights, dtype=float))
        if not weights.sum() > 0:
            return None
        cdf = weights.cumsum()
        cdf /= cdf[-1]  # an operator with weight 0 shares its predecessor's bound: never drawn
        return self._operator_list[bisect.bisect_right(cdf.tolist(), rng.random())]

    def founder(self, slot: int, founder: Founder) -> Child:
        """A generation-0 candidate (the seed or an initial unit)."""
        return Child(NewCandidate(
            slot=slot, kind=self.species.kind, genome=dict(founder.genome),
            operator=founder.operator, generation=0,
            mutation={"exchanges": list(founder.exchanges)},
            usage=exchanges_usage(founder.exchanges),
            descriptors=self.species.text_descriptors(founder.genome, None),
            fingerprint=self.species.fingerprint(founder.genome)), ())

    # -- evaluating ------------------------------------------------------------------------------
    def training_batch(self, slot: int) -> list[Example]:
        train = self.species.split("train")
        size = min(self.batch_size, len(train))
        picks = self.streams(BATCH, slot).choice(len(train), size=size, replace=False)
        return [train[int(i)] for i in picks]

    async def evaluate(self, candidate: Candidate) -> Candidate:
        """Score a pending candidate on its training batch and record the result."""
        mutation = candidate.mutation or {}
        invalid = mutation.get("invalid")
        if invalid:
            if "duplicate_of_slot" in mutation:
                invalid = self.duplicate_reason(candidate, mutation["duplicate_of_slot"])
            elif "near_duplicate_of_slot" in mutation:
                invalid = self.duplicate_reason(candidate, mutation["near_duplicate_of_slot"],
                                                mutation["similarity"])
            return await self._finish(Finish(
                candidate.id, Status.INVALID, reason=invalid,
                failure=mutation.get("failure", Failure.INVALID_OUTPUT)))
        started = time.perf_counter()
        try:
            scores, usage, failed = await self._staged(candidate,
                                                       self.training_batch(candidate.slot))
        except LLMError as exc:
            if stops_the_run(exc):
                raise
            return await self._finish(Finish(
                candidate.id, Status.FAILED, reason=task_llm_reason(exc),
                timings={"evaluate": time.perf_counter() - started}, failure=failure_kind(exc)))
        except USER_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: see the module doc
            return await self._finish(Finish(
                candidate.id, Status.FAILED, reason=unexpected(exc, "scoring", candidate.slot),
                timings={"evaluate": time.perf_counter() - started}, failure=Failure.INTERNAL))
        return await self._finish(Finish(
            candidate.id, Status.FAILED if failed else Status.EVALUATED,
            reason=failed and failed.reason, scores=tuple(scores), usage=usage,
            timings={"evaluate": time.perf_counter() - started},
            failure=failed and failed.kind))

    def duplicate_reason(self, candidate: Candidate, slot: int,
                         similarity: float | None = None) -> str:
        """Which candidate ``candidate`` duplicates (by id, once it is in the archive), or
        nearly duplicates with ``similarity``."""
        earlier = self.storage.index.by_slot(slot)
        relation = ("equals" if similarity is None
                    else f"is {similarity:.2f} similar (at least the novelty threshold) to")
        tail = ": not evaluated again" if similarity is None else ": not evaluated"
        if earlier is None:
            return f"the child {relation} the candidate in slot {slot}{tail}"
        whose = " (its parent)" if earlier.id in candidate.parent_ids else ""
        return f"the child {relation} #{earlier.id}{whose}{tail}"

    async def _finish(self, finish: Finish) -> Candidate:
        return await self.writer.apply(finish, meta=self.usage_meta)

    async def _staged(self, candidate: Candidate, batch: Sequence[Example]
                      ) -> tuple[list[SplitScore], Usage, Failed | None]:
        """Score ``batch`` stage by stage (see ``fitness.stages``): the "train" score over
        what was scored, one "stageN" score per stage run, the usage, the first failure."""
        if not self.stages:
            scored = await self.species.score(candidate, "train", batch)
            return [scored.score], scored.usage, scored.failure
        parts: list[tuple[Sequence[Example], float | None]] = []
        start = 0
        for stage in self.stages:
            parts.append((batch[start:start + stage.examples], stage.threshold))
            start += stage.examples
        parts.append((batch[start:], None))  # the rest of the batch, if any
        done: list[ExampleScore] = []
        scores, usage, failure, mean = [], Usage(), None, 0.0
        for number, (part, threshold) in enumerate(parts, 1):
            if not part:
                break
            scored = await self.species.score(candidate, f"stage{number}", part)
            scores.append(scored.score)
            usage, failure = usage + scored.usage, failure or scored.failure
            done += scored.score.examples
            mean = math.fsum(e.score for e in done) / len(done)
            if failure or (threshold is not None and mean < threshold):
                break
        return [SplitScore("train", mean, tuple(done)), *scores], usage, failure

    async def validate(self, candidate: Candidate) -> Candidate:
        """Add the validation score of an evaluated candidate (see ``score_on``)."""
        examples = list(self.species.split("validation"))[: self.validation_size]
        return await self.score_on(candidate, "validation", examples)

    async def score_on(self, candidate: Candidate, split: str,
                       examples: Sequence[Example]) -> Candidate:
        """Add the score of an evaluated candidate on ``examples``, recorded as ``split``
        (validation, the collapse monitor's probe).

        A scoring that raises (the task LLM failed for this candidate, or the
        candidate made a scorer raise, see the module doc) is recorded as a
        score of 0 whose every example gives the reason as its output: the
        candidate keeps its status and train score, is not scored on the split
        again, and ranks last there.
        """
        step = "validating" if split == "validation" else f"scoring on {split}"
        scored = await self._try_score(candidate, split, examples, step)
        if isinstance(scored, str):
            scored = _unscored(split, examples, scored)
        return await self.writer.apply(AddScores(candidate.id, scored.score, scored.usage),
                                       meta=self.usage_meta)

    async def rescore(self, top: int, size: int) -> None:
        """Noise-aware selection: each of the ``top`` best candidates scored on its own
        batch only is scored on ``size`` fresh training examples (drawn for its slot, none
        of its batch), and its training score becomes the mean over all of them."""
        if size <= 0:
            return
        train = self.species.split("train")
        for candidate in self.storage.index.top(top):
            done = candidate.scores["train"].examples
            if len(done) > self.batch_size:
                continue  # re-scored already
            seen = {e.example_id for e in done}
            fresh = [i for i in self.streams(RESCORE, candidate.slot).permutation(len(train))
                     .tolist() if train[i].id not in seen][:size]
            if not fresh:
                continue
            await self._merge_train(candidate, [train[i] for i in fresh])

    async def _merge_train(self, candidate: Candidate, examples: Sequence[Example]) -> None:
        scored = await self._try_score(candidate, "train", examples, "re-scoring")
        if isinstance(scored, str):
            return  # the candidate keeps the score it had
        merged = (*candidate.scores["train"].examples, *scored.score.examples)
        mean = math.fsum(e.score for e in merged) / len(merged)
        await self.writer.apply(AddScores(candidate.id, SplitScore("train", mean, merged),
                                          scored.usage), meta=self.usage_meta)

    async def _try_score(self, candidate: Candidate, split: str, examples: Sequence[Example],
                         step: str) -> Scored | str:
        """The score of ``candidate`` on ``examples``, or the reason it has none when the
        failure is this candidate's (the task LLM failed for it, or it made a scorer raise:
        the boundary of the module doc). Errors that stop the run propagate."""
        try:
            return await self.species.score(candidate, split, examples)
        except LLMError as exc:
            if stops_the_run(exc):
                raise
            return task_llm_reason(exc)
        except USER_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: see the module doc
            return unexpected(exc, step, candidate.slot)

    def to_validate(self, top: int) -> list[Candidate]:
        """The best ``top`` evaluated candidates by training score without a validation score."""
        return [c for c in self.storage.index.top(top) if "validation" not in c.scores]


def _named(name: str, reason: str) -> str:
    """``reason`` led by the operator's name (once)."""
    return reason if reason.startswith(f"{name}:") else f"{name}: {reason}"


def task_llm_reason(error: LLMError) -> str:
    """The recorded reason for a task-LLM failure that belongs to one candidate."""
    if isinstance(error, LLMResponseError):
        return f"task LLM gave no usable answer: {error}"
    return f"task LLM failed: {error}"


def unexpected(error: Exception, step: str, slot: int) -> str:
    """The recorded reason for ``error`` raised while ``step`` of the candidate in ``slot``
    (logged once with its traceback: it may be a bug of trusted code)."""
    logger.error("%s the candidate in slot %d raised %s; recorded as its failure", step, slot,
                 type(error).__name__, exc_info=error)
    reason = f"{step} raised {type(error).__name__}: {error}"[:_REASON_CHARS]
    return reason.encode("utf-8", "replace").decode("utf-8")


def _unscored(split: str, examples: Sequence[Example], reason: str) -> Scored:
    """A score of 0 on ``examples``, each giving ``reason``."""
    return Scored(SplitScore(split, 0.0, tuple(ExampleScore(e.id, 0.0, reason)
                                               for e in examples)), Usage())


def exchanges_usage(exchanges: Sequence[Mapping[str, Any]]) -> Usage:
    """LLM usage recorded in a mutation's exchanges."""
    total = Usage()
    for ex in exchanges:  # an exchange is one request, or a sandboxed run with "calls" of them
        cached = bool(ex.get("cached"))
        total = total + Usage(
            calls=0 if cached else int(ex.get("calls", 1)), cache_hits=1 if cached else 0,
            prompt_tokens=0 if cached else int(ex.get("prompt_tokens", 0)),
            completion_tokens=0 if cached else int(ex.get("completion_tokens", 0)))
    return total


def _client_usage(client: LLMClient) -> Usage:
    s = client.stats()
    return Usage(calls=s.calls, cache_hits=s.cache_hits, prompt_tokens=s.prompt_tokens,
                 completion_tokens=s.completion_tokens)
