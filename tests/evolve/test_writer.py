"""Group commit of the archive writes: one transaction per batch, durable before any
caller goes on, each caller with its own result; LLM responses are queued and
committed with the batch, with what their caller writes next. Most tests use
``settle=0`` (a batch is committed at the end of the event-loop turn of its first
write); the last ones show what ``settle`` adds."""

from __future__ import annotations

import asyncio

import pytest

from archive import AddScores, Finish, InMemoryStorage, NewCandidate, SplitScore, Status
from evolve._writer import ArchiveWriter


class CountingStorage(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[list[int], list[str]]] = []
        self.fail = False

    def write(self, changes=(), *, new=(), cache=(), meta=None):
        if self.fail:
            raise OSError("disk full")
        self.batches.append(([n.slot for n, _ in new], [c.candidate_id for c in changes],
                             [k for k, _, _ in cache]))
        return super().write(changes, new=new, cache=cache, meta=meta)


def storage_with(n: int) -> CountingStorage:
    storage = CountingStorage()
    for slot in range(n):
        storage.add_candidate(NewCandidate(slot=slot, kind="prompt", genome={"p": str(slot)}))
    storage.batches.clear()
    return storage


def finish(cid: int, mean: float) -> Finish:
    return Finish(cid, Status.EVALUATED, scores=(SplitScore("train", mean),))


def test_writes_of_one_turn_are_one_batch_and_durable_before_callers_resume():
    storage = storage_with(3)
    writer = ArchiveWriter(storage, settle=0)

    async def evaluate(cid: int) -> None:
        candidate = await writer.apply(finish(cid, cid / 10), meta=lambda: {"calls": cid})
        assert candidate == storage.get(cid) and candidate.fitness == cid / 10
        writer.cache_store(f"k{cid}", {"n": cid}, '{"text": "x"}')
        assert storage.cache_get(f"k{cid}") is None  # queued, not written yet ...
        assert writer.cache_get(f"k{cid}") == {"text": "x"}  # ... but found already
        await asyncio.sleep(0)
        assert storage.cache_get(f"k{cid}") == {"text": "x"}  # durable at the turn's end

    async def main() -> None:
        await asyncio.gather(*(evaluate(cid) for cid in (1, 2, 3)))
        await writer.apply(AddScores(2, SplitScore("validation", 0.5)))

    asyncio.run(main())
    assert storage.batches == [([], [1, 2, 3], []), ([], [], ["k1", "k2", "k3"]),
                               ([], [2], [])]
    assert storage.get_meta("calls") == 3  # the last meta source given, read at the commit
    assert storage.get(2).score("validation") == 0.5


def test_a_queued_response_joins_what_its_caller_writes_next():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=0)

    async def main() -> None:
        writer.cache_store("k", "{}", '{"text": "x"}')  # the LLM client's answer ...
        await writer.apply(finish(1, 0.5))  # ... and the candidate scored with it

    asyncio.run(main())
    assert storage.batches == [([], [1], ["k"])]  # one transaction


def test_a_failed_batch_of_queued_responses_is_reported_by_the_next_write():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=0)

    async def main() -> None:
        storage.fail = True
        writer.cache_store("k", "{}", "{}")
        await asyncio.sleep(0)  # the commit fails; nobody waits for it
        storage.fail = False
        with pytest.raises(OSError, match="disk full"):
            await writer.apply(finish(1, 0.5))
        assert await writer.apply(finish(1, 0.5))  # reported once

    asyncio.run(main())


def test_close_commits_what_is_queued_and_reports_a_failure():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=0)

    async def main() -> None:
        writer.cache_store("k", "{}", '{"text": "y"}')
        writer.close()  # before the scheduled commit runs
        assert storage.cache_get("k") == {"text": "y"}
        await asyncio.sleep(0)  # the scheduled commit finds nothing left to do
        storage.fail = True
        writer.cache_store("k2", "{}", "{}")
        with pytest.raises(OSError, match="disk full"):
            writer.close()

    asyncio.run(main())
    assert storage.batches == [([], [], ["k"])]


def test_new_candidates_and_changes_share_a_batch_and_each_caller_gets_its_own():
    storage = storage_with(2)
    writer = ArchiveWriter(storage, settle=0)

    def child(slot: int) -> NewCandidate:
        return NewCandidate(slot=slot, kind="prompt", genome={"p": "c"}, parent_ids=(1,))

    async def main():
        return await asyncio.gather(
            writer.add([(child(5), [2]), (child(6), [])]), writer.apply(finish(1, 0.5)),
            writer.add([(child(7), [])]), writer.apply(finish(2, 0.25)))

    first, finished, second, other = asyncio.run(main())
    assert storage.batches == [([5, 6, 7], [1, 2], [])]  # one transaction
    assert [c.slot for c in first] == [5, 6] and [c.slot for c in second] == [7]
    assert finished.id == 1 and finished.fitness == 0.5 and other.id == 2
    assert other.retired_by == first[0].id  # retired by the new candidate in slot 5


def test_a_failed_batch_reaches_every_waiting_caller():
    storage = storage_with(2)
    storage.fail = True
    writer = ArchiveWriter(storage, settle=0)

    async def main():
        writer.cache_store("k", {}, {})
        return await asyncio.gather(writer.apply(finish(1, 0.1)), writer.add([]),
                                    return_exceptions=True)

    assert [type(r) for r in asyncio.run(main())] == [OSError, OSError]
    assert storage.get(1).status is Status.PENDING and storage.cache_size() == 0


def test_an_invalid_change_fails_its_whole_batch():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=0)

    async def main():
        return await asyncio.gather(writer.apply(finish(1, 0.1)), writer.apply(finish(1, 0.2)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, Exception) for r in results)
    assert storage.get(1).status is Status.PENDING


def test_a_cancelled_caller_does_not_cancel_the_commit():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=0)

    async def main():
        task = asyncio.create_task(writer.apply(finish(1, 0.3)))
        await asyncio.sleep(0)  # the change is queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert storage.get(1).fitness == 0.3


def test_a_batch_waits_settle_iterations_for_writes_of_tasks_woken_meanwhile():
    storage = storage_with(4)
    writer = ArchiveWriter(storage, settle=2)
    durable_when_resumed = []

    async def evaluate(cid: int, delay: int) -> None:
        for _ in range(delay):  # woken later, as by an answer that was already waiting
            await asyncio.sleep(0)
        candidate = await writer.apply(finish(cid, 0.5))
        durable_when_resumed.append(storage.get(cid).status is Status.EVALUATED
                                    and candidate.status is Status.EVALUATED)

    async def main() -> None:
        await asyncio.gather(*(evaluate(cid, delay) for cid, delay in
                               ((1, 0), (2, 1), (3, 2), (4, 3))))

    asyncio.run(main())
    # 2 and 3 write within the two iterations that the batch of 1 waits; 4 is too late
    assert storage.batches == [([], [1, 2, 3], []), ([], [4], [])]
    assert durable_when_resumed == [True] * 4


def test_close_commits_a_settling_batch_once():
    storage = storage_with(1)
    writer = ArchiveWriter(storage, settle=3)

    async def main() -> None:
        writer.cache_store("k", "{}", '{"text": "y"}')
        writer.close()
        writer.cache_store("k2", "{}", '{"text": "z"}')  # a new batch, its own settling
        for _ in range(4):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert storage.batches == [([], [], ["k"]), ([], [], ["k2"])]


def test_settle_must_not_be_negative():
    with pytest.raises(ValueError, match="settle"):
        ArchiveWriter(InMemoryStorage(), settle=-1)
