"""Group commit for the response cache.

Every paid response must be durable before its caller goes on (a run killed
afterwards must not pay for it again), but one transaction per response is the
largest fixed cost per request. ``CacheWriter`` collects the responses that
arrive in the same event-loop turn and writes them in one transaction; each
caller resumes once its entry is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ResponseCache(Protocol):
    """What the client needs from a cache (the archive storage implements it)."""

    def cache_get(self, key: str) -> Mapping[str, Any] | None: ...

    def cache_put(self, key: str, request: Mapping[str, Any],
                  response: Mapping[str, Any]) -> None: ...


Entry = tuple[str, Mapping[str, Any], Mapping[str, Any]]


class CacheWriter:
    """Writes cache entries in batches, one batch per event-loop turn."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._pending: list[Entry] = []
        self._committed: asyncio.Future[None] | None = None

    async def put(self, key: str, request: Mapping[str, Any],
                  response: Mapping[str, Any]) -> None:
        """Queue an entry and wait until it is committed (the commit survives a
        cancellation of the waiting caller)."""
        self._pending.append((key, request, response))
        if self._committed is None:
            loop = asyncio.get_running_loop()
            self._committed = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._committed)

    def _flush(self) -> None:
        entries, self._pending = self._pending, []
        committed, self._committed = self._committed, None
        assert committed is not None
        put_many = getattr(self.cache, "cache_put_many", None)
        try:
            if put_many is not None:
                put_many(entries)
            else:
                for entry in entries:
                    self.cache.cache_put(*entry)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            committed.set_exception(exc)
            committed.exception()  # retrieved: callers may all have been cancelled
            return
        committed.set_result(None)
