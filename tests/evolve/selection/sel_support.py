"""Test helpers for the selector tests: archive indexes built from plain numbers."""

from __future__ import annotations

from collections.abc import Sequence

from archive import ArchiveIndex, Candidate, SplitScore, Status, Usage


def candidate(cid: int, fitness: float | None = 0.5, *, status: Status = Status.EVALUATED,
              parents: Sequence[int] = (), retired_by: int | None = None) -> Candidate:
    scores = ({"train": SplitScore("train", fitness)}
              if status is Status.EVALUATED and fitness is not None else {})
    return Candidate(
        id=cid, slot=cid, kind="prompt",
        genome={"task_prompts": [f"prompt {cid}"], "mutation_prompt": "m", "context": []},
        parent_ids=tuple(parents), operator="seed", generation=0, status=status, reason=None,
        retired_by=retired_by, scores=scores, mutation=None, usage=Usage(), timings={},
        descriptors={}, created_at=0.0, updated_at=0.0)


def index_of(*candidates: Candidate) -> ArchiveIndex:
    index = ArchiveIndex()
    for c in candidates:
        index.publish(c)
    return index


def with_children(index: ArchiveIndex, parent: int, count: int, first_id: int) -> int:
    """Give ``parent`` ``count`` pending children; returns the next free id."""
    for i in range(count):
        index.publish(candidate(first_id + i, None, status=Status.PENDING, parents=(parent,)))
    return first_id + count
