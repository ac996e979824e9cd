"""Group commit of a run's archive writes.

Every new candidate, finished candidate, validation score and paid LLM response
must be durable before the task that produced it goes on (a run killed
afterwards must neither lose it nor pay for it again), but one transaction per
write was the largest fixed cost per candidate. ``ArchiveWriter`` collects what
the run's tasks write and commits it with ONE ``ArchiveStorage.write``; each
caller resumes once its write is committed, with its own result.

A batch is committed ``settle`` event-loop iterations after its first write, not
at the end of the first one: tasks woken by I/O that is already waiting (the
answers of other LLM requests) run in those iterations and join it. In steady
state, with a few candidates in flight, committing at the end of each iteration
made 1.5 transactions per candidate. An iteration of a loop with nothing else
to do costs microseconds, so waiting is free where it does not batch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from archive import ArchiveStorage, CacheEntry, Candidate, Change, NewCandidate

Meta = Callable[[], Mapping[str, Any]]
_Committed = tuple[int, list[Candidate]]  # (how many were new, the write's result)
SETTLE = 4  # event-loop iterations between a batch's first write and its commit


class ArchiveWriter:
    """Writes new candidates, changes and cache entries in batches, one batch (one
    transaction) ``settle`` event-loop iterations after its first write.

    It is also the LLM clients' response cache (``cache_get``/``cache_store``). A
    failed batch raises its error in every caller of that batch; a caller that is
    cancelled while waiting does not cancel the commit. A failed batch of queued
    LLM responses alone, which nobody waits for, raises its error in the next
    ``add``, ``apply`` or ``close``. ``close()`` commits whatever is still queued.
    """

    def __init__(self, storage: ArchiveStorage, *, settle: int = SETTLE) -> None:
        if settle < 0:
            raise ValueError("settle must be >= 0")
        self.storage = storage
        self.settle = settle
        self._new: list[tuple[NewCandidate, Sequence[int]]] = []
        self._changes: list[Change] = []
        self._cache: dict[str, CacheEntry] = {}  # queued LLM responses by key
        self._meta: Meta | None = None
        self._committed: asyncio.Future[_Committed] | None = None
        self._unreported: BaseException | None = None  # a failed batch nobody waited for

    async def add(self, items: Sequence[tuple[NewCandidate, Sequence[int]]],
                  meta: Meta | None = None) -> list[Candidate]:
        """Add new candidates (each with the ids it retires; all in the same
        transaction) and return them as they are after it. ``meta``, if given, is
        called at the commit and its values are stored in the same transaction (the
        run's usage totals)."""
        self._raise_unreported()
        start = len(self._new)
        self._new.extend(items)
        _, result = await self._commit(meta)
        return result[start:start + len(items)]

    async def apply(self, change: Change, meta: Meta | None = None) -> Candidate:
        """Apply one change (``Finish`` or ``AddScores``) and return the candidate after
        it; ``meta`` as for ``add``."""
        self._raise_unreported()
        position = len(self._changes)
        self._changes.append(change)
        n_new, result = await self._commit(meta)
        return result[n_new + position]

    def cache_get(self, key: str) -> Mapping[str, Any] | None:
        queued = self._cache.get(key)
        if queued is None:
            return self.storage.cache_get(key)
        response = queued[2]
        return json.loads(response) if isinstance(response, str) else response

    def cache_store(self, key: str, request: Mapping[str, Any] | str,
                    response: Mapping[str, Any] | str) -> None:
        """Queue an LLM response; it is committed with the current batch (see the module
        docstring)."""
        self._cache.setdefault(key, (key, request, response))
        self._schedule()

    def close(self) -> None:
        """Commit what is queued now, and raise the error of any failed batch that no
        caller has seen."""
        self._flush()
        self._raise_unreported()

    async def _commit(self, meta: Meta | None) -> _Committed:
        if meta is not None:
            self._meta = meta
        return await asyncio.shield(self._schedule())

    def _schedule(self) -> asyncio.Future[_Committed]:
        if self._committed is None:
            loop = asyncio.get_running_loop()
            self._committed = loop.create_future()
            loop.call_soon(self._settle, self._committed, self.settle)
        return self._committed

    def _settle(self, batch: asyncio.Future[_Committed], left: int) -> None:
        if batch is not self._committed:  # committed already by close()
            return
        if left:
            asyncio.get_running_loop().call_soon(self._settle, batch, left - 1)
        else:
            self._flush()

    def _raise_unreported(self) -> None:
        if self._unreported is not None:
            error, self._unreported = self._unreported, None
            raise error

    def _flush(self) -> None:
        committed, self._committed = self._committed, None
        if committed is None:  # nothing queued, or committed already by close()
            return
        new, self._new = self._new, []
        changes, self._changes = self._changes, []
        cache, self._cache = list(self._cache.values()), {}
        meta, self._meta = self._meta, None
        try:
            result = self.storage.write(changes, new=new, cache=cache,
                                        meta=None if meta is None else meta())
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            if not (new or changes):  # only queued LLM responses: nobody is waiting
                self._unreported = exc
            committed.set_exception(exc)
            committed.exception()  # retrieved: callers may all have been cancelled
            return
        committed.set_result((len(new), result))
