"""The conformance suite every :class:`ArchiveStorage` must pass (needs pytest).

Modelled on Optuna's ``testing/pytest_storages.py``: the tests are written once
against the interface and run on every implementation. To run them, provide a
``factory`` fixture and subclass :class:`StorageConformance`::

    @pytest.fixture(params=sorted(STORAGE_FACTORIES))
    def factory(request, tmp_path):
        return STORAGE_FACTORIES[request.param](tmp_path)

    class TestStorages(StorageConformance):
        pass

The helpers (``TickClock``, ``snapshot``, ``assert_same_archive``,
``check_index_consistent``) are also used by the property tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ._index import ArchiveIndex
from ._memory import InMemoryStorage
from ._records import (
    AddScores,
    Candidate,
    ExampleScore,
    Finish,
    NewCandidate,
    SplitScore,
    Status,
    Usage,
)
from ._sqlite import SQLiteStorage
from ._storage import (
    ArchiveError,
    ArchiveStorage,
    DuplicateSlotError,
    InvalidTransitionError,
    UnknownCandidateError,
)


class TickClock:
    """A deterministic clock: 1000.0, 1000.5, 1001.0, ... one tick per reading."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return 1000.0 + 0.5 * (self.readings - 1)


class StorageFactory:
    """Makes empty storages of one kind; ``reopen`` gives the same data back, if it can."""

    persistent = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.clock = TickClock()

    def create(self) -> ArchiveStorage:
        raise NotImplementedError

    def reopen(self, storage: ArchiveStorage) -> ArchiveStorage:
        raise NotImplementedError


class MemoryFactory(StorageFactory):
    def create(self) -> ArchiveStorage:
        return InMemoryStorage(clock=self.clock)


class SQLiteFactory(StorageFactory):
    persistent = True

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.made = 0

    def create(self) -> ArchiveStorage:
        self.made += 1
        return SQLiteStorage(self.directory / f"archive-{self.made}.db", clock=self.clock)

    def reopen(self, storage: ArchiveStorage) -> ArchiveStorage:
        assert isinstance(storage, SQLiteStorage)
        storage.close()
        return SQLiteStorage(storage.path, clock=self.clock)


STORAGE_FACTORIES: dict[str, Callable[[Path], StorageFactory]] = {
    "memory": MemoryFactory,
    "sqlite": SQLiteFactory,
}


# -- comparing archives ---------------------------------------------------------------------
def _floats(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def snapshot(storage: ArchiveStorage) -> dict[str, Any]:
    """Everything a reader can observe of a storage, as comparable plain data."""
    index = storage.index
    ids = np.arange(index.max_id() + 1)
    return {
        "candidates": index.candidates(),
        "max_id": index.max_id(),
        "next_slot": index.next_slot(),
        "slots": {c.slot: c.id for c in index.candidates()},
        "children": {c.id: index.children(c.id) for c in index.candidates()},
        "population": index.population_ids().tolist(),
        "fitness": _floats(index.fitness_of(ids)),
        "n_children": index.children_count_of(ids).tolist(),
        "counts": index.counts_by_status(),
        "meta": storage.meta_items(),
        "cache": list(storage.cache_items()),
        "cache_size": storage.cache_size(),
    }


def assert_same_archive(a: ArchiveStorage, b: ArchiveStorage) -> None:
    sa, sb = snapshot(a), snapshot(b)
    for key in sa:
        assert sa[key] == sb[key], f"archives differ in {key}"


def check_index_consistent(index: ArchiveIndex) -> None:
    """The index's derived structures agree with its candidates."""
    cands = index.candidates()
    assert [c.id for c in cands] == sorted({c.id for c in cands})
    assert index.max_id() == max((c.id for c in cands), default=0)
    assert index.next_slot() == max((c.slot for c in cands), default=-1) + 1
    children: dict[int, list[int]] = {}
    for c in cands:
        assert index.by_slot(c.slot) == c
        for pid in dict.fromkeys(c.parent_ids):
            assert pid in index and pid < c.id
            children.setdefault(pid, []).append(c.id)
    ids = np.arange(index.max_id() + 1)
    for c in cands:
        assert index.children(c.id) == children.get(c.id, [])
    assert index.children_count_of(ids).tolist() == [len(children.get(i, [])) for i in ids]
    assert _floats(index.fitness_of(ids))[1:] == [
        index.get(i).fitness if i in index else None for i in ids[1:]]
    population = [c.id for c in cands if c.alive and c.fitness is not None]
    assert index.population_ids().tolist() == population
    assert index.population_size() == len(population)
    assert all(index.in_population(c.id) == (c.id in population) for c in cands)
    assert index.candidates(status=Status.PENDING) == [
        c for c in cands if c.status is Status.PENDING]
    # the leaderboards answer as a scan would (best first, ties: lower id first)
    evaluated = [c for c in cands if c.fitness is not None]
    by_fitness = sorted(evaluated, key=lambda c: (-(c.fitness or 0.0), c.id))
    for k in (1, 2, 5, len(by_fitness) + 1):
        assert index.top(k) == by_fitness[:k]
    splits = {split for c in evaluated for split in c.scores}
    for split in splits | {"never-scored"}:
        on_split = [c for c in evaluated if split in c.scores]
        best = min(on_split, key=lambda c: (-c.scores[split].mean, c.id), default=None)
        assert index.best(split) == best


# -- building archives -------------------------------------------------------------------------
def new(slot: int, parents: tuple[int, ...] = (), **kw: Any) -> NewCandidate:
    kw.setdefault("genome", {"prompt": f"candidate in slot {slot}"})
    kw.setdefault("operator", "mutate" if parents else "seed")
    return NewCandidate(slot=slot, kind="prompt", parent_ids=parents, **kw)


def train(mean: float, n: int = 2) -> SplitScore:
    return SplitScore("train", mean, tuple(ExampleScore(f"ex{i}", mean, f"out {i}")
                                           for i in range(n)))


def build_sample(storage: ArchiveStorage) -> None:
    """A small archive with a merge, a retirement, every status, metadata and a cache."""
    storage.set_meta({"config": {"name": "sample", "seed": 7}, "rng": [1, 2, 3]})
    for slot in range(3):
        storage.add_candidate(new(slot))
    storage.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)], usage=Usage(1, 0, 10, 5))
    storage.finish_candidate(2, Status.EVALUATED, scores=[train(0.25)])
    storage.finish_candidate(3, Status.FAILED, reason="LLM timed out")
    storage.add_candidate(new(3, (1, 2), operator="crossover", generation=1,
                              mutation={"request": "merge", "response": "ok"}), retire=[2])
    storage.finish_candidate(4, Status.EVALUATED, scores=[train(0.75)],
                             timings={"evaluate": 1.5}, meta={"best": 4})
    storage.add_scores(4, SplitScore("validation", 0.5))
    storage.add_candidate(new(4, (4,), generation=2, descriptors={"length": 12.0}))
    storage.finish_candidate(5, Status.INVALID, reason="empty prompt")
    storage.add_candidate(new(5, (4, 1), generation=2))
    storage.cache_put("k1", {"messages": ["hi"]}, {"text": "hello"})
    storage.cache_put("k2", {"messages": ["bye"]}, {"text": "goodbye"})


class StorageConformance:
    """Tests every storage must pass; needs a ``factory`` fixture (a StorageFactory)."""

    def test_empty(self, factory: StorageFactory) -> None:
        s = factory.create()
        assert len(s) == 0 and s.index.max_id() == 0 and s.index.next_slot() == 0
        assert s.get_meta("missing", 42) == 42 and s.meta_items() == {}
        assert s.cache_size() == 0 and list(s.cache_items()) == []
        assert s.cache_get("k") is None

    def test_meta(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.set_meta({"a": 1, "b": {"x": (1, 2)}, "c": None})
        s.set_meta({"a": "two"})
        assert s.get_meta("a") == "two" and s.get_meta("b") == {"x": [1, 2]}
        assert s.get_meta("c", "default") is None  # a stored null is a value, not absence
        assert s.meta_items() == {"a": "two", "b": {"x": [1, 2]}, "c": None}
        with pytest.raises(TypeError):
            s.set_meta({"ok": 1, "bad": object()})
        with pytest.raises(ValueError):
            s.set_meta({"ok": 1, "nan": math.nan})
        assert s.get_meta("ok") is None  # all or nothing

    def test_add_assigns_ids_and_normalises(self, factory: StorageFactory) -> None:
        s = factory.create()
        genome = {"prompts": ("a", "b"), "n": 1}
        c1 = s.add_candidate(new(0, genome=genome))
        genome["n"] = 2  # the caller's dict is not shared with the archive
        c2 = s.add_candidate(new(1, (1,), generation=1, usage=Usage(2, 1, 30, 40),
                                 mutation={"request": ("x",)}))
        assert (c1.id, c2.id) == (1, 2)
        assert c1.genome == {"prompts": ["a", "b"], "n": 1} and s.get(1) == c1
        assert c1.status is Status.PENDING and c1.reason is None and c1.alive
        assert c1.scores == {} and c1.mutation is None and c1.fitness is None
        assert c2.parent_ids == (1,) and c2.mutation == {"request": ["x"]}
        assert c2.usage == Usage(2, 1, 30, 40) and c2.created_at == c2.updated_at
        assert s.index.by_slot(1) == c2 and s.index.children(1) == [2]
        assert s.index.next_slot() == 2 and len(s) == 2

    def test_duplicate_slot(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        before = snapshot(s)
        with pytest.raises(DuplicateSlotError, match="slot 0"):
            s.add_candidate(new(0))
        assert snapshot(s) == before

    def test_unknown_parent_or_retiree(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        before = snapshot(s)
        with pytest.raises(UnknownCandidateError):
            s.add_candidate(new(1, (1, 9)))
        with pytest.raises(KeyError):  # UnknownCandidateError is a KeyError too
            s.add_candidate(new(1), retire=[1, 9])
        assert snapshot(s) == before
        assert not s.get(1).retired_by

    def test_failed_add_leaves_nothing(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        before = snapshot(s)
        with pytest.raises(TypeError):
            s.add_candidate(new(1, (1,), descriptors={"x": object()}), retire=[1])
        with pytest.raises(ValueError):
            s.add_candidate(new(1, (1,), genome={"x": math.inf}), retire=[1])
        assert snapshot(s) == before and s.get(1).alive
        assert s.add_candidate(new(1, (1,))).id == 2

    def test_add_candidates_is_one_transaction(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        before = snapshot(s)
        with pytest.raises(DuplicateSlotError):  # the third repeats the first's slot
            s.add_candidates([(new(1), [1]), (new(2, (2,)), []), (new(1), [])], meta={"g": 1})
        assert snapshot(s) == before and s.get(1).alive
        added = s.add_candidates([(new(1, (1,)), [1]), (new(2, (2,)), []), (new(3), [2])],
                                 meta={"generation": 1})
        assert [c.id for c in added] == [2, 3, 4] and added == [s.get(i) for i in (2, 3, 4)]
        assert s.get(3).parent_ids == (2,) and s.get(1).retired_by == 2  # in-batch parent
        assert added[0].retired_by == 4 and not added[0].alive  # retired later in the batch
        assert s.get_meta("generation") == 1 and s.index.children(2) == [3]
        assert len({c.created_at for c in added}) == 1  # one clock reading for the batch
        assert s.add_candidates([], meta={"generation": 2}) == []
        assert s.get_meta("generation") == 2
        check_index_consistent(s.index)

    def test_retire(self, factory: StorageFactory) -> None:
        s = factory.create()
        for slot in range(3):
            s.add_candidate(new(slot))
            s.finish_candidate(slot + 1, Status.EVALUATED, scores=[train(0.1 * slot)])
        assert s.index.population_ids().tolist() == [1, 2, 3]
        c = s.add_candidate(new(3, (1,)), retire=[2, 3, 2])
        assert s.get(2).retired_by == c.id == s.get(3).retired_by and s.get(1).alive
        assert not s.get(2).alive and s.get(2).updated_at == c.created_at
        assert s.index.population_ids().tolist() == [1]
        assert s.index.candidates(alive=False) == [s.get(2), s.get(3)]
        with pytest.raises(InvalidTransitionError, match="already retired"):
            s.add_candidate(new(4), retire=[3])
        assert len(s) == 4

    def test_finish_evaluated(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0, usage=Usage(1, 0, 10, 20)))
        c = s.finish_candidate(1, Status.EVALUATED, scores=[train(0.5, 3)],
                               usage=Usage(2, 1, 5, 5), timings={"evaluate": 2.0},
                               meta={"progress": {"done": 1}})
        assert c == s.get(1) and c.status is Status.EVALUATED and c.fitness == 0.5
        assert c.scores["train"].examples[2] == ExampleScore("ex2", 0.5, "out 2")
        assert c.usage == Usage(3, 1, 15, 25) and c.timings == {"evaluate": 2.0}
        assert c.updated_at > c.created_at
        assert s.get_meta("progress") == {"done": 1}
        assert s.index.population_ids().tolist() == [1]
        assert s.index.fitness_of(np.array([1])).tolist() == [0.5]
        assert s.index.best() == c

    def test_finish_failed_needs_reason(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        s.add_candidate(new(1))
        for status in (Status.FAILED, Status.INVALID):
            with pytest.raises(InvalidTransitionError, match="reason"):
                s.finish_candidate(1, status)
        assert s.get(1).status is Status.PENDING
        assert s.finish_candidate(1, Status.FAILED, reason="crash").reason == "crash"
        assert s.finish_candidate(2, "invalid", reason="empty").status is Status.INVALID
        assert s.get(1).fitness is None and s.index.population_ids().size == 0

    def test_invalid_transitions(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        with pytest.raises(InvalidTransitionError):
            s.finish_candidate(1, Status.PENDING)
        s.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)])
        before = snapshot(s)
        with pytest.raises(InvalidTransitionError, match="pending"):
            s.finish_candidate(1, Status.EVALUATED, scores=[train(0.9)], meta={"x": 1})
        with pytest.raises(UnknownCandidateError):
            s.finish_candidate(7, Status.EVALUATED)
        assert snapshot(s) == before

    def test_failed_finish_leaves_nothing(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        before = snapshot(s)
        with pytest.raises(ValueError):
            s.finish_candidate(1, Status.EVALUATED, scores=[train(math.nan)], meta={"x": 1})
        with pytest.raises(ValueError):
            s.finish_candidate(1, Status.EVALUATED, scores=[train(0.1), train(0.2)])
        with pytest.raises(TypeError):
            s.finish_candidate(1, Status.EVALUATED, scores=[train(0.1)], meta={"x": {1, 2}})
        assert snapshot(s) == before

    def test_add_scores(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        with pytest.raises(InvalidTransitionError, match="evaluated"):
            s.add_scores(1, SplitScore("validation", 0.4))
        s.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)])
        s.add_scores(1, SplitScore("validation", 0.4), Usage(1, 0, 3, 4))
        c = s.add_scores(1, SplitScore("validation", 0.3, (ExampleScore("v1", 0.3),)))
        assert c == s.get(1) and c.score("validation") == 0.3 and c.fitness == 0.5
        assert c.scores["validation"].examples == (ExampleScore("v1", 0.3, ""),)
        assert c.usage == Usage(1, 0, 3, 4) and s.index.best("validation") == c
        with pytest.raises(UnknownCandidateError):
            s.add_scores(2, SplitScore("validation", 0.4))

    def test_import_candidate(self, factory: StorageFactory) -> None:
        src = factory.create()
        build_sample(src)
        dst = factory.create()
        for c in src.index.candidates():
            dst.import_candidate(c)
        assert dst.index.candidates() == src.index.candidates()
        check_index_consistent(dst.index)
        c1 = src.get(1)
        with pytest.raises(ArchiveError, match="already exists"):
            dst.import_candidate(c1)
        with pytest.raises(DuplicateSlotError):
            dst.import_candidate(Candidate(**{**vars(c1), "id": 99}))
        with pytest.raises(UnknownCandidateError):
            dst.import_candidate(Candidate(**{**vars(c1), "id": 99, "slot": 99,
                                              "parent_ids": (50,)}))
        with pytest.raises(ArchiveError, match="smaller id"):
            dst.import_candidate(Candidate(**{**vars(c1), "id": 99, "slot": 99,
                                              "parent_ids": (120,)}))
        assert dst.index.candidates() == src.index.candidates()
        assert dst.add_candidate(new(50)).id == 7

    def test_cache(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.cache_put("k", {"prompt": ("p",)}, {"text": "first"})
        s.cache_put("k", {"prompt": "other"}, {"text": "second"})  # idempotent: first kept
        s.cache_put("j", {}, {"text": "j"})
        assert s.cache_get("k") == {"text": "first"} and s.cache_size() == 2
        assert list(s.cache_items()) == [("k", {"prompt": ["p"]}, {"text": "first"}),
                                         ("j", {}, {"text": "j"})]
        with pytest.raises(TypeError):
            s.cache_put("x", {"a": 1}, ["not", "a", "mapping"])  # type: ignore[arg-type]
        assert s.cache_get("x") is None and s.cache_size() == 2

    def test_cache_put_many(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.cache_put("k", {}, {"text": "first"})
        s.cache_put_many([("a", {"n": 1}, {"text": "a"}), ("k", {}, {"text": "second"}),
                          ("b", {"n": 2}, {"text": "b"})])
        assert s.cache_get("k") == {"text": "first"}  # idempotent within a batch too
        assert [key for key, _, _ in s.cache_items()] == ["k", "a", "b"]
        with pytest.raises(TypeError):  # one bad entry: nothing of the batch is written
            s.cache_put_many([("c", {}, {"text": "c"}), ("x", {}, ["not a mapping"])])
        assert s.cache_get("c") is None and s.cache_size() == 3

    def test_write_is_one_transaction_in_order(self, factory: StorageFactory) -> None:
        s = factory.create()
        for slot in range(3):
            s.add_candidate(new(slot))
        done = s.write([Finish(1, Status.EVALUATED, scores=(train(0.5),), usage=Usage(1, 0, 2, 3)),
                        AddScores(1, SplitScore("validation", 0.25), Usage(1, 0, 1, 1)),
                        Finish(2, Status.FAILED, reason="crash", timings={"evaluate": 0.5})],
                       cache=[("k", {"q": (1,)}, {"text": "a"}), ("t", '{"q":2}', '{"text":"b"}')],
                       meta={"m": 1})
        # the AddScores saw the Finish before it in the same write
        assert [c.id for c in done] == [1, 1, 2] and done[0].status is Status.EVALUATED
        assert "validation" not in done[0].scores and done[1] == s.get(1)
        assert s.get(1).score("validation") == 0.25 and s.get(1).usage == Usage(2, 0, 3, 4)
        assert s.get(2).reason == "crash" and s.get(2).timings == {"evaluate": 0.5}
        assert s.cache_get("t") == {"text": "b"} and s.cache_get("k") == {"text": "a"}
        assert s.get_meta("m") == 1 and s.write() == []
        check_index_consistent(s.index)

    def test_failed_write_leaves_nothing(self, factory: StorageFactory) -> None:
        s = factory.create()
        s.add_candidate(new(0))
        s.add_candidate(new(1))
        before = snapshot(s)
        for bad in ([Finish(1, Status.EVALUATED, scores=(train(0.5),)),
                     Finish(1, Status.EVALUATED, scores=(train(0.5),))],  # twice
                    [Finish(1, Status.EVALUATED), AddScores(2, SplitScore("validation", 0.1))],
                    [Finish(1, Status.EVALUATED), Finish(9, Status.EVALUATED)]):
            with pytest.raises(ArchiveError):
                s.write(bad, cache=[("k", {}, {"text": "a"})], meta={"m": 1})
            assert snapshot(s) == before
        with pytest.raises(ValueError, match="not a JSON object"):
            s.write([Finish(1, Status.EVALUATED)], cache=[("k", {}, "[1, 2]")])
        assert snapshot(s) == before

    def test_index_consistent_and_reopen(self, factory: StorageFactory) -> None:
        s = factory.create()
        build_sample(s)
        check_index_consistent(s.index)
        assert s.index.counts_by_status() == {Status.PENDING: 1, Status.EVALUATED: 3,
                                              Status.FAILED: 1, Status.INVALID: 1}
        assert s.get(4).parent_ids == (1, 2) and s.index.children(1) == [4, 6]
        assert s.index.population_ids().tolist() == [1, 4]
        if not factory.persistent:
            return
        before = snapshot(s)
        reopened = factory.reopen(s)
        assert snapshot(reopened) == before
        reopened.add_candidate(new(6, (6,)))  # ids go on after a reopen
        assert reopened.get(7).parent_ids == (6,)
        reopened.close()

    def test_context_manager_closes(self, factory: StorageFactory) -> None:
        with factory.create() as s:
            s.add_candidate(new(0))
        if factory.persistent:
            with pytest.raises(ArchiveError):
                s.add_candidate(new(1))
