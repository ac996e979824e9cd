"""The archive-storage interface shared by the in-memory and SQLite stores.

A storage holds one run: its metadata (config, RNG state, run state), its
candidates (the lineage graph's nodes; edges are ``parent_ids``), and the LLM
response cache. Every method that changes state is one transaction.

Reads are served from an in-memory :class:`~archive.ArchiveIndex` that
the storage keeps in step with every write, so strategies never touch the
database and reads stay O(1) as the archive grows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._index import ArchiveIndex
from ._records import (
    AddScores,
    CacheEntry,
    Candidate,
    Change,
    Failure,
    Finish,
    NewCandidate,
    SplitScore,
    Status,
    Usage,
)


class ArchiveStorage(ABC):
    """One run's archive. Implementations: ``InMemoryStorage``, ``SQLiteStorage``."""

    #: read-only, always current view used by selectors, operators and reports
    index: ArchiveIndex

    # -- run metadata (JSON values) ------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""

    @abstractmethod
    def set_meta(self, values: Mapping[str, Any]) -> None:
        """Store several JSON values in one transaction."""

    @abstractmethod
    def meta_items(self) -> dict[str, Any]:
        """All metadata as a new dict (key -> JSON value), for copying and reports."""

    # -- candidates -------------------------------------------------------------------
    def add_candidate(self, new: NewCandidate, retire: Sequence[int] = ()) -> Candidate:
        """Create a ``pending`` candidate and retire ``retire`` (set their ``retired_by``
        to the new id) in one transaction. Ids are assigned 1, 2, 3, ... The retirement
        is undone if the candidate finishes failed or invalid (``finish_candidate``).

        Raises ``DuplicateSlotError`` if the slot is taken, ``UnknownCandidateError``
        if a parent or retiree does not exist.
        """
        [candidate] = self.write(new=[(new, retire)])
        return candidate

    def add_candidates(
        self,
        items: Sequence[tuple[NewCandidate, Sequence[int]]],
        meta: Mapping[str, Any] | None = None,
    ) -> list[Candidate]:
        """``add_candidate(new, retire)`` for each item in order, and store ``meta`` values,
        all in one transaction (a generation is committed whole or not at all). Returns
        the new candidates as they are after the whole batch.
        """
        return self.write(new=items, meta=meta)

    @abstractmethod
    def write(
        self,
        changes: Sequence[Change] = (),
        *,
        new: Sequence[tuple[NewCandidate, Sequence[int]]] = (),
        cache: Sequence[CacheEntry] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> list[Candidate]:
        """Add the ``new`` candidates (each a ``NewCandidate`` and the ids it retires,
        as ``add_candidate`` does), then apply ``changes``, each in order and seeing the
        ones before it; store the ``cache`` entries (idempotent per key: a second entry
        for a key keeps the first) and the ``meta`` values; all in ONE transaction: all
        or none. Returns the new candidates as they are after the whole write, then
        each change's candidate as it is after that change.

        This is the group commit of a run: what several tasks finish in the same
        moment costs one transaction. Raises ``InvalidTransitionError`` for a change the
        life cycle does not allow (finishing a candidate that is not pending, scoring
        one that is not evaluated), ``UnknownCandidateError`` for an unknown id.
        """

    def finish_candidate(
        self,
        candidate_id: int,
        status: Status,
        *,
        reason: str | None = None,
        scores: Sequence[SplitScore] = (),
        usage: Usage = Usage(),  # noqa: B008 - Usage is frozen, sharing it is safe
        timings: Mapping[str, float] | None = None,
        failure: Failure | str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Candidate:
        """Move a ``pending`` candidate to a final status with its scores, add ``usage``
        to its mutation usage, merge ``timings``, and store ``meta`` values, all in one
        transaction (``write`` of one :class:`Finish`). ``FAILED``/``INVALID`` require a
        ``reason`` and may give its kind (``failure``, a :class:`Failure` or its value);
        such a candidate gives back the candidates it retired (alive again). Raises
        ``InvalidTransitionError`` if the candidate is not pending.
        """
        [candidate] = self.write(
            [Finish(candidate_id, status, reason, tuple(scores), usage, timings, failure)],
            meta=meta)
        return candidate

    def add_scores(
        self, candidate_id: int, score: SplitScore,
        usage: Usage = Usage(),  # noqa: B008 - Usage is frozen, sharing it is safe
    ) -> Candidate:
        """Add (or replace) one split's scores of an evaluated candidate, e.g. validation."""
        [candidate] = self.write([AddScores(candidate_id, score, usage)])
        return candidate

    @abstractmethod
    def import_candidate(self, candidate: Candidate) -> None:
        """Insert a candidate exactly as given (id included); used by fork/copy."""

    # -- LLM response cache --------------------------------------------------------------
    @abstractmethod
    def cache_get(self, key: str) -> Mapping[str, Any] | None:
        """The cached response for a request key, or None."""

    def cache_put(self, key: str, request: Mapping[str, Any] | str,
                  response: Mapping[str, Any] | str) -> None:
        """Store a response (idempotent: a second put for a key keeps the first)."""
        self.write(cache=[(key, request, response)])

    def cache_put_many(self, entries: Sequence[CacheEntry]) -> None:
        """Store several responses at once, all or none (one transaction)."""
        self.write(cache=entries)

    @abstractmethod
    def cache_items(self) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
        """All (key, request, response) triples, for copying."""

    @abstractmethod
    def cache_size(self) -> int: ...

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (database connection)."""

    def __enter__(self) -> ArchiveStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conveniences shared by all implementations -------------------------------------------
    def get(self, candidate_id: int) -> Candidate:
        return self.index.get(candidate_id)

    def __len__(self) -> int:
        return len(self.index)
