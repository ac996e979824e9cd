"""Group commit of the response cache: one write per event-loop turn, durable before
any caller goes on."""

from __future__ import annotations

import asyncio

import pytest

from archive import InMemoryStorage
from evolve.llm._cache_writer import CacheWriter


class CountingCache(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.fail = False

    def cache_put_many(self, entries):
        if self.fail:
            raise OSError("disk full")
        self.batches.append([key for key, _, _ in entries])
        super().cache_put_many(entries)


def test_puts_of_one_turn_are_one_batch_and_committed_before_callers_resume():
    cache = CountingCache()
    writer = CacheWriter(cache)

    async def put(key):
        await writer.put(key, {}, {"text": key})
        assert cache.cache_get(key) == {"text": key}  # durable when the caller resumes

    async def main():
        await asyncio.gather(*(put(k) for k in "abc"))
        await put("d")

    asyncio.run(main())
    assert cache.batches == [["a", "b", "c"], ["d"]]


def test_a_failed_write_reaches_every_waiting_caller():
    cache = CountingCache()
    cache.fail = True
    writer = CacheWriter(cache)

    async def main():
        return await asyncio.gather(writer.put("a", {}, {}), writer.put("b", {}, {}),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert [type(r) for r in results] == [OSError, OSError]


def test_a_cancelled_caller_does_not_cancel_the_commit():
    cache = CountingCache()
    writer = CacheWriter(cache)

    async def main():
        task = asyncio.create_task(writer.put("a", {}, {"text": "a"}))
        await asyncio.sleep(0)  # the entry is queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert cache.cache_get("a") == {"text": "a"}
