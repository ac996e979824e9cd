"""Frozen record types stored in the archive.

The archive knows nothing about genome classes: a genome is stored as a
JSON-serialisable mapping plus a ``kind`` tag ("prompt", "code", ...), and the
engine turns it back into its own type.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """Life-cycle state of a candidate."""

    PENDING = "pending"  # written, not (yet) evaluated
    EVALUATED = "evaluated"  # scored on the training batch
    FAILED = "failed"  # evaluation broke (LLM error, crash); ``reason`` says why
    INVALID = "invalid"  # the child itself is unusable (empty prompt, bad patch)


FINAL_STATUSES = frozenset({Status.EVALUATED, Status.FAILED, Status.INVALID})


class Failure(enum.StrEnum):
    """Why a candidate is ``invalid`` (its child was not made or not evaluated) or
    ``failed`` (its evaluation broke): one of a fixed set, so runs can be counted by it.
    ``Candidate.reason`` holds the precise words."""

    NO_BLOCK = "no_block"  # the answer held no edit, program or prompt in the asked format
    INVALID_OUTPUT = "invalid_output"  # the answer had the format but could not be used
    NO_MATCH = "no_match"  # an edit's SEARCH text is not in the parent, or not once
    OUTSIDE_MARKERS = "outside_markers"  # changes frozen text (markers) or a read-only file
    SYNTAX_ERROR = "syntax_error"  # the child's code does not compile
    TRUNCATED = "truncated"  # the reply was cut at max_tokens and is not usable
    DUPLICATE = "duplicate"  # equals its parent or a candidate already in the archive
    NEAR_DUPLICATE = "near_duplicate"  # too similar to a candidate already in the archive
    NOT_APPLICABLE = "not_applicable"  # no enabled operator could apply to the parent
    TIMEOUT = "timeout"  # an LLM request or a sandboxed run took too long
    LLM_ERROR = "llm_error"  # an LLM request failed (5xx, refused, unusable answer)
    RUNTIME_ERROR = "runtime_error"  # the child's code crashed (import or run time)
    RESOURCE_LIMIT = "resource_limit"  # memory, process or output limit of the sandbox
    SANDBOX_ERROR = "sandbox_error"  # the sandbox itself failed
    INTERNAL = "internal"  # trusted code raised (logged with its traceback)


@dataclass(frozen=True)
class Usage:
    """LLM usage and time spent on one candidate (or summed over many)."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.cache_hits + other.cache_hits,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{k: int(data.get(k, 0)) for k in ("calls", "cache_hits",
                                                         "prompt_tokens", "completion_tokens")})


@dataclass(frozen=True)
class ExampleScore:
    """Score of one benchmark example, with the model output that earned it."""

    example_id: str
    score: float
    output: str = ""


@dataclass(frozen=True)
class SplitScore:
    """Scores of a candidate on one split ("train", "validation", "test")."""

    split: str
    mean: float
    examples: tuple[ExampleScore, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "mean": self.mean,
            "examples": [[e.example_id, e.score, e.output] for e in self.examples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitScore:
        return cls(
            split=data["split"],
            mean=float(data["mean"]),
            examples=tuple(ExampleScore(str(i), float(s), str(o)) for i, s, o in data["examples"]),
        )


@dataclass(frozen=True)
class NewCandidate:
    """What the engine hands the archive to create a ``pending`` candidate.

    ``slot`` is the candidate's deterministic position in the run (0, 1, 2, ...):
    a resumed run re-creates the same slots, and the archive refuses a second
    candidate for a slot, so a candidate is never duplicated.
    """

    slot: int
    kind: str
    genome: Mapping[str, Any]
    parent_ids: tuple[int, ...] = ()
    operator: str = "seed"
    generation: int = 0
    mutation: Mapping[str, Any] | None = None  # exact LLM requests/responses that made it
    usage: Usage = Usage()  # usage of the mutation step
    descriptors: Mapping[str, float] = field(default_factory=dict)
    #: what the candidate is, normalised as its genome kind sees it (equal fingerprints:
    #: candidates that would be evaluated alike); None when it is not comparable
    fingerprint: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One node of the lineage graph, as stored."""

    id: int
    slot: int
    kind: str
    genome: Mapping[str, Any]
    parent_ids: tuple[int, ...]
    operator: str
    generation: int
    status: Status
    reason: str | None
    retired_by: int | None  # id of the child whose creation retired it (tournament loser)
    scores: Mapping[str, SplitScore]
    mutation: Mapping[str, Any] | None
    usage: Usage
    timings: Mapping[str, float]  # seconds per phase: "mutate", "evaluate", ...
    descriptors: Mapping[str, float]
    created_at: float
    updated_at: float
    failure: Failure | None = None  # the kind of ``reason`` (failed and invalid candidates)
    fingerprint: str | None = None  # see ``NewCandidate.fingerprint``

    @property
    def alive(self) -> bool:
        """Member of the current population (not retired by a tournament)."""
        return self.retired_by is None

    @property
    def fitness(self) -> float | None:
        """Mean training-batch score, or None when not evaluated."""
        if self.status is not Status.EVALUATED or "train" not in self.scores:
            return None
        return self.scores["train"].mean

    def score(self, split: str) -> float | None:
        s = self.scores.get(split)
        return None if s is None else s.mean


@dataclass(frozen=True)
class Finish:
    """A change for ``ArchiveStorage.write``: a ``pending`` candidate moves to a final
    status with its scores; ``usage`` is added to its mutation usage and ``timings``
    merged into its timings. ``FAILED``/``INVALID`` need a ``reason``, and may give its
    kind as ``failure``."""

    candidate_id: int
    status: Status
    reason: str | None = None
    scores: Sequence[SplitScore] = ()
    usage: Usage = Usage()
    timings: Mapping[str, float] | None = None
    failure: Failure | str | None = None  # checked against ``Failure`` when written


@dataclass(frozen=True)
class AddScores:
    """A change for ``ArchiveStorage.write``: one split's scores (e.g. validation) added
    to, or replaced in, an ``evaluated`` candidate, and ``usage`` added to its usage."""

    candidate_id: int
    score: SplitScore
    usage: Usage = Usage()


#: what ``ArchiveStorage.write`` applies to existing candidates
Change = Finish | AddScores

#: an LLM-cache entry: (key, request, response); request and response are JSON objects,
#: given as mappings or as their JSON text (written as given, e.g. the bytes on the wire)
CacheEntry = tuple[str, Mapping[str, Any] | str, Mapping[str, Any] | str]
