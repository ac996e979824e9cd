"""The engine is the boundary: whatever a candidate makes trusted code raise ends as a record
of that candidate with a reason; only user errors stop the run."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from archive import AddScores, Failure, Finish, Status
from evolve._engine import Engine
from evolve._errors import ConfigError
from evolve._streams import Streams
from fitness import BenchmarkError, Example
from sandboxes import SandboxError

EXAMPLES = [Example(f"e{i}", "q", "a") for i in range(3)]


class _Species:
    kind = "code"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def split(self, name: str) -> list[Example]:
        return EXAMPLES

    async def score(self, candidate: Any, split: str, examples: Any) -> Any:
        raise self.error


class _Writer:
    def __init__(self) -> None:
        self.changes: list[Any] = []

    async def apply(self, change: Any, meta: Any = None) -> Any:
        self.changes.append(change)
        return change


def _engine(error: BaseException) -> Engine:
    client = SimpleNamespace(stats=lambda: SimpleNamespace(
        calls=0, cache_hits=0, prompt_tokens=0, completion_tokens=0))
    return Engine(storage=None, writer=_Writer(), species=_Species(error),  # type: ignore[arg-type]
                  mutator=client, task=client, selector=None,  # type: ignore[arg-type]
                  operators={"op": "op"}, weights=np.ones(1), streams=Streams(0), batch_size=2,
                  validation_size=None, usage_before={})


CANDIDATE = SimpleNamespace(id=7, slot=3, mutation={})


def test_a_scorer_that_raises_fails_the_candidate_with_the_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(RecursionError("maximum recursion depth exceeded"))
    with caplog.at_level(logging.ERROR, logger="evolve._engine"):
        finish = asyncio.run(engine.evaluate(CANDIDATE))  # type: ignore[arg-type]
    assert isinstance(finish, Finish) and finish.status is Status.FAILED
    assert finish.reason == "scoring raised RecursionError: maximum recursion depth exceeded"
    assert finish.failure is Failure.INTERNAL
    [record] = caplog.records
    assert record.exc_info is not None and "slot 3" in record.getMessage()


def test_a_reason_that_is_huge_or_not_utf8_is_cut_and_made_storable() -> None:
    engine = _engine(ValueError("\ud800" + "x" * 10_000))
    finish = asyncio.run(engine.evaluate(CANDIDATE))  # type: ignore[arg-type]
    assert len(finish.reason) <= 1000 and "\ud800" not in finish.reason
    finish.reason.encode("utf-8")


@pytest.mark.parametrize("error", [ConfigError("bad config"), BenchmarkError("no data"),
                                   SandboxError("no daemon")])
def test_user_errors_still_stop_the_run(error: Exception) -> None:
    with pytest.raises(type(error)):
        asyncio.run(_engine(error).evaluate(CANDIDATE))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        asyncio.run(_engine(error).validate(CANDIDATE))  # type: ignore[arg-type]


def test_a_validation_that_raises_records_zero_with_the_reason() -> None:
    engine = _engine(OSError(36, "File name too long"))
    change = asyncio.run(engine.validate(CANDIDATE))  # type: ignore[arg-type]
    assert isinstance(change, AddScores) and change.score.split == "validation"
    assert change.score.mean == 0.0 and len(change.score.examples) == len(EXAMPLES)
    assert all(e.output == "validating raised OSError: [Errno 36] File name too long"
               for e in change.score.examples)


def test_cancellation_passes_through() -> None:
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_engine(asyncio.CancelledError()).evaluate(CANDIDATE))  # type: ignore[arg-type]
