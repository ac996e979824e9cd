"""Change planning shared by every storage.

Each state-changing storage method has three steps: *plan* the change (pure:
validate it against the index and build the new frozen records), *persist* it
in one transaction, then *publish* the new records to the index. Both storages
plan with this module, so they cannot disagree about a change; whether the
plans are right is checked against the independent reference model of the
conformance suite (``tests/archive/conformance.py``). Values are normalised
through JSON by ``_json.Encoder``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._errors import (
    ArchiveError,
    DuplicateSlotError,
    InvalidTransitionError,
    UnknownCandidateError,
)
from ._index import ArchiveIndex
from ._json import Encoder, dumps, text
from ._records import (
    FINAL_STATUSES,
    AddScores,
    Candidate,
    Change,
    Failure,
    Finish,
    NewCandidate,
    Status,
)

_REASON_REQUIRED = frozenset({Status.FAILED, Status.INVALID})


@dataclass(frozen=True)
class Plan:
    """A validated change: the new records, and the JSON texts a database row needs."""

    candidate: Candidate
    #: the other candidates whose ``retired_by`` the change sets (the retirees of a new
    #: candidate) or clears (those of a candidate that finished without being evaluated)
    retired: tuple[Candidate, ...] = ()
    #: JSON text of each JSON column of ``candidate`` that changed ("genome", "usage", ...)
    texts: Mapping[str, str | None] = field(default_factory=dict)
    #: split -> JSON text of its examples, for each split whose scores changed
    score_texts: Mapping[str, str] = field(default_factory=dict)
    #: the status the candidate had before the change (None: a new candidate)
    before: Status | None = None


def _planned(enc: Encoder, candidate: Candidate, retired: Sequence[Candidate] = (),
             before: Status | None = None) -> Plan:
    """The plan of ``candidate`` with the JSON texts ``enc`` made for it."""
    return Plan(candidate, tuple(retired), enc.texts, enc.score_texts, before)


def evolve_record(candidate: Candidate, **changes: Any) -> Candidate:
    """``dataclasses.replace`` for a Candidate whose new values are already normalised,
    at a tenth of its cost (the frozen ``__init__`` is what is slow)."""
    new = object.__new__(Candidate)
    new.__dict__.update(candidate.__dict__, **changes)
    return new


class IndexView(Protocol):
    """What planning reads: an :class:`ArchiveIndex`, or one with a batch planned on top."""

    def __contains__(self, candidate_id: object) -> bool: ...
    def get(self, candidate_id: int) -> Candidate: ...
    def by_slot(self, slot: int) -> Candidate | None: ...
    def max_id(self) -> int: ...
    def retirees(self, candidate_id: int) -> list[Candidate]: ...


class _Overlay:
    """The index plus the candidates planned earlier in the same batch."""

    def __init__(self, index: ArchiveIndex) -> None:
        self.index = index
        self.new: dict[int, Candidate] = {}
        self.slots: dict[int, int] = {}

    def __contains__(self, candidate_id: object) -> bool:
        return candidate_id in self.new or candidate_id in self.index

    def get(self, candidate_id: int) -> Candidate:
        c = self.new.get(candidate_id)
        return self.index.get(candidate_id) if c is None else c

    def by_slot(self, slot: int) -> Candidate | None:
        cid = self.slots.get(slot)
        return self.index.by_slot(slot) if cid is None else self.new[cid]

    def max_id(self) -> int:
        return max(self.index.max_id(), max(self.new, default=0))

    def retirees(self, candidate_id: int) -> list[Candidate]:
        ids = {c.id for c in self.index.retirees(candidate_id)} - self.new.keys()
        ids |= {c.id for c in self.new.values() if c.retired_by == candidate_id}
        return [self.get(i) for i in sorted(ids)]

    def put(self, candidate: Candidate) -> None:
        self.new[candidate.id] = candidate
        self.slots[candidate.slot] = candidate.id


def _existing(index: IndexView, candidate_id: int, role: str) -> Candidate:
    if candidate_id not in index:
        raise UnknownCandidateError(f"{role} #{candidate_id} does not exist in the archive")
    return index.get(candidate_id)


def plan_add(index: IndexView, new: NewCandidate, retire: Sequence[int], now: float) -> Plan:
    """The new pending candidate and the retirees it retires (with ``retired_by`` set)."""
    slot = operator.index(new.slot)
    taken = index.by_slot(slot)
    if taken is not None:
        raise DuplicateSlotError(f"slot {slot} already holds candidate #{taken.id}")
    parent_ids = tuple(operator.index(p) for p in new.parent_ids)
    for pid in parent_ids:
        _existing(index, pid, "parent")
    retirees: list[Candidate] = []
    for rid in dict.fromkeys(operator.index(r) for r in retire):
        retiree = _existing(index, rid, "candidate to retire")
        if retiree.retired_by is not None:
            raise InvalidTransitionError(
                f"candidate #{rid} was already retired by #{retiree.retired_by}")
        retirees.append(retiree)
    cid = index.max_id() + 1
    enc = Encoder()
    candidate = Candidate(
        id=cid,
        slot=slot,
        kind=text(new.kind, "kind"),
        genome=enc.mapping("genome", new.genome),
        parent_ids=parent_ids,
        operator=text(new.operator, "operator"),
        generation=operator.index(new.generation),
        status=Status.PENDING,
        reason=None,
        retired_by=None,
        scores={},
        mutation=enc.optional("mutation", new.mutation),
        usage=enc.usage(new.usage),
        timings=enc.mapping("timings", {}),
        descriptors=enc.mapping("descriptors", new.descriptors),
        created_at=now,
        updated_at=now,
        fingerprint=_fingerprint(new.fingerprint),
    )
    return _planned(enc, candidate, [evolve_record(r, retired_by=cid, updated_at=now)
                                     for r in retirees])


@dataclass(frozen=True)
class BatchPlan:
    """A validated ``ArchiveStorage.write``: new candidates first, then the changes."""

    added: list[Plan]
    changed: list[Plan]
    #: the new candidates as they are after the whole batch, then each change's candidate
    result: list[Candidate]


def plan_batch(
    index: ArchiveIndex, new: Sequence[tuple[NewCandidate, Sequence[int]]],
    changes: Sequence[Change], now: float,
) -> BatchPlan:
    """Plans for adding ``new`` and then applying ``changes``, each in order and each
    seeing the ones before it."""
    view = _Overlay(index)
    added = []
    for candidate, retire in new:
        plan = plan_add(view, candidate, retire, now)
        for retiree in plan.retired:
            view.put(retiree)
        view.put(plan.candidate)
        added.append(plan)
    changed = []
    for change in changes:
        if isinstance(change, Finish):
            plan = plan_finish(view, change, now)
        elif isinstance(change, AddScores):
            plan = plan_add_scores(view, change, now)
        else:
            raise TypeError(f"not an archive change: {change!r}")
        for retiree in plan.retired:
            view.put(retiree)
        view.put(plan.candidate)
        changed.append(plan)
    result = [view.get(p.candidate.id) for p in added] + [p.candidate for p in changed]
    return BatchPlan(added, changed, result)


def plan_finish(index: IndexView, change: Finish, now: float) -> Plan:
    """The candidate moved from pending to the final status. A candidate that finishes
    without being evaluated (failed or invalid) gives back the candidates it retired: a
    retirement (a tournament's loser) takes effect only for a child that joins the
    population in the loser's place, so a failed child never shrinks it."""
    candidate_id, reason = change.candidate_id, change.reason
    current = _existing(index, candidate_id, "candidate")
    status = Status(change.status)
    if status not in FINAL_STATUSES:
        raise InvalidTransitionError(f"cannot finish candidate #{candidate_id} as {status}")
    if current.status is not Status.PENDING:
        raise InvalidTransitionError(
            f"candidate #{candidate_id} is {current.status}, only pending candidates can finish")
    if status in _REASON_REQUIRED and not reason:
        raise InvalidTransitionError(f"a {status} candidate needs a reason (#{candidate_id})")
    given_back = [] if status is Status.EVALUATED else [
        evolve_record(r, retired_by=None, updated_at=now) for r in index.retirees(candidate_id)]
    enc = Encoder()
    return _planned(enc, evolve_record(
        current,
        status=status,
        reason=None if reason is None else text(reason, "reason"),
        failure=_failure(change.failure, status, candidate_id),
        scores={**current.scores, **enc.scores(change.scores)},
        usage=enc.usage(current.usage + change.usage),
        timings=enc.mapping("timings", {**current.timings, **(change.timings or {})}),
        updated_at=now,
    ), given_back, before=current.status)


def _fingerprint(fingerprint: str | None) -> str | None:
    return None if fingerprint is None else text(fingerprint, "fingerprint")


def _failure(failure: Failure | str | None, status: Status, candidate_id: int
             ) -> Failure | None:
    """``failure`` as a :class:`Failure`, checked to belong to a failed or invalid one."""
    if failure is None:
        return None
    if status not in _REASON_REQUIRED:
        raise InvalidTransitionError(
            f"a {status} candidate has no failure kind (#{candidate_id} got {failure!r})")
    try:
        return Failure(failure)
    except ValueError:
        raise InvalidTransitionError(
            f"unknown failure kind {failure!r} for #{candidate_id} (known: "
            f"{', '.join(Failure)})") from None


def plan_add_scores(index: IndexView, change: AddScores, now: float) -> Plan:
    """The evaluated candidate with the score added (or replacing that split's scores)."""
    current = _existing(index, change.candidate_id, "candidate")
    if current.status is not Status.EVALUATED:
        raise InvalidTransitionError(
            f"candidate #{change.candidate_id} is {current.status}; only evaluated "
            "candidates get more scores")
    enc = Encoder()
    new = enc.split_score(change.score)
    enc.texts["timings"] = dumps(current.timings)
    return _planned(enc, evolve_record(
        current,
        scores={**current.scores, new.split: new},
        usage=enc.usage(current.usage + change.usage),
        updated_at=now,
    ), before=current.status)


def plan_import(index: ArchiveIndex, candidate: Candidate) -> Plan:
    """``candidate`` normalised, after checking that it fits into the archive as given."""
    cid = operator.index(candidate.id)
    if cid < 1:
        raise ArchiveError(f"candidate ids start at 1, got {cid}")
    if cid in index:
        raise ArchiveError(f"candidate #{cid} already exists")
    slot = operator.index(candidate.slot)
    taken = index.by_slot(slot)
    if taken is not None:
        raise DuplicateSlotError(f"slot {slot} already holds candidate #{taken.id}")
    parent_ids = tuple(operator.index(p) for p in candidate.parent_ids)
    for pid in parent_ids:
        if pid >= cid:
            raise ArchiveError(f"parent #{pid} of candidate #{cid} must have a smaller id")
        _existing(index, pid, "parent")
    retired_by = None if candidate.retired_by is None else operator.index(candidate.retired_by)
    if retired_by is not None and retired_by <= cid:
        raise ArchiveError(f"candidate #{cid} cannot be retired by an older candidate "
                           f"(#{retired_by})")
    status = Status(candidate.status)
    if status in _REASON_REQUIRED and not candidate.reason:
        raise InvalidTransitionError(f"a {status} candidate needs a reason (#{cid})")
    failure = _failure(candidate.failure, status, cid)
    if any(split != score.split for split, score in candidate.scores.items()):
        raise ArchiveError(f"candidate #{cid}: scores are keyed by a name other than their split")
    enc = Encoder()
    return _planned(enc, Candidate(
        id=cid,
        slot=slot,
        kind=text(candidate.kind, "kind"),
        genome=enc.mapping("genome", candidate.genome),
        parent_ids=parent_ids,
        operator=text(candidate.operator, "operator"),
        generation=operator.index(candidate.generation),
        status=status,
        reason=None if candidate.reason is None else text(candidate.reason, "reason"),
        retired_by=retired_by,
        scores=enc.scores(list(candidate.scores.values())),
        mutation=enc.optional("mutation", candidate.mutation),
        usage=enc.usage(candidate.usage),
        timings=enc.mapping("timings", candidate.timings),
        descriptors=enc.mapping("descriptors", candidate.descriptors),
        created_at=float(candidate.created_at),
        updated_at=float(candidate.updated_at),
        failure=failure,
        fingerprint=_fingerprint(candidate.fingerprint),
    ))
