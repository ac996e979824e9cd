"""The conformance suite every :class:`ArchiveStorage` must pass (needs pytest).

Modelled on Optuna's ``testing/pytest_storages.py``: the tests are written once
against the interface and run on every implementation. To run them, provide a
``factory`` fixture and subclass :class:`StorageConformance`::

    @pytest.fixture(params=sorted(STORAGE_FACTORIES))
    def factory(request, tmp_path):
        return STORAGE_FACTORIES[request.param](tmp_path)

    class TestStorages(StorageConformance):
        pass

Besides example tests, the suite checks every storage against ``ReferenceArchive``, a
plain model of the candidates' life cycle that shares no code with the storages, after
each step of random histories of adds, retirements, finishes and added scores.

The helpers (``TickClock``, ``snapshot``, ``assert_same_archive``,
``check_index_consistent``) are also used by the property tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import (
    AddScores,
    ArchiveError,
    ArchiveIndex,
    ArchiveStorage,
    Candidate,
    DuplicateSlotError,
    ExampleScore,
    Failure,
    Finish,
    InMemoryStorage,
    InvalidTransitionError,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
    UnknownCandidateError,
    Usage,
)


class TickClock:
    """A deterministic clock: 1000.0, 1000.5, 1001.0, ... one tick per reading."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.last()

    def last(self) -> float:
        """The latest reading (1000.0 before the first)."""
        return 1000.0 + 0.5 * max(self.readings - 1, 0)


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
    first: dict[str, int] = {}
    for c in cands:
        if c.fingerprint is not None:
            first.setdefault(c.fingerprint, c.id)
    assert all(index.with_fingerprint(f).id == cid for f, cid in first.items())
    assert index.with_fingerprint("never given") is None
    for c in cands:
        assert index.retirees(c.id) == [r for r in cands if r.retired_by == c.id]
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
    # best(split) counts every evaluated candidate, with a training score or not
    evaluated = [c for c in cands if c.status is Status.EVALUATED]
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


# -- the reference model ---------------------------------------------------------------------
# Both storages plan their changes with the same code (archive/_changes.py), so comparing
# them with each other cannot find a planning bug. The model below is the independent
# oracle: every rule of the candidates' life cycle written out the plainest way, sharing
# no code with the storages but the record types.


class Refused(Exception):
    """The model refuses a write: ``allowed`` holds every error type the write deserves
    (a storage may raise any one of them, whichever it checks first)."""

    def __init__(self, allowed: set[type[Exception]]) -> None:
        super().__init__(", ".join(sorted(t.__name__ for t in allowed)))
        self.allowed = frozenset(allowed)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON; TypeError or ValueError if JSON cannot hold it."""
    return json.loads(json.dumps(value, allow_nan=False))


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"not a mapping: {value!r}")
    return _as_json(dict(value))


def _as_stored(score: SplitScore) -> SplitScore:
    examples = tuple(ExampleScore(str(e.example_id), float(e.score), str(e.output))
                     for e in score.examples)
    if not all(math.isfinite(x) for x in (score.mean, *(e.score for e in examples))):
        raise ValueError(f"a score of split {score.split!r} is not finite")
    return SplitScore(score.split, float(score.mean), examples)


class ReferenceArchive:
    """What an archive holds after a sequence of writes: candidates by id and metadata.

    ``write`` takes what ``ArchiveStorage.write`` takes, plus the time of the write (the
    one clock reading a storage makes for it), and returns what the storage must return.
    A refused write raises :class:`Refused` and changes nothing.
    """

    def __init__(self) -> None:
        self.candidates: dict[int, Candidate] = {}
        self.meta: dict[str, Any] = {}

    def in_id_order(self) -> list[Candidate]:
        return [self.candidates[cid] for cid in sorted(self.candidates)]

    def write(self, changes: Sequence[Finish | AddScores] = (), *,
              new: Sequence[tuple[NewCandidate, Sequence[int]]] = (),
              meta: Mapping[str, Any] | None = None, now: float) -> list[Candidate]:
        after = dict(self.candidates)  # a copy: records are replaced, never changed
        added = [self._add(after, item, retire, now) for item, retire in new]
        changed = [self._change(after, change, now) for change in changes]
        self.candidates = after
        self.meta.update(_as_json(dict(meta or {})))
        return [after[cid] for cid in added] + changed

    @staticmethod
    def _add(after: dict[int, Candidate], new: NewCandidate, retire: Sequence[int],
             now: float) -> int:
        problems: set[type[Exception]] = set()
        if any(c.slot == new.slot for c in after.values()):
            problems.add(DuplicateSlotError)
        if any(pid not in after for pid in new.parent_ids):
            problems.add(UnknownCandidateError)
        for rid in retire:
            if rid not in after:
                problems.add(UnknownCandidateError)
            elif after[rid].retired_by is not None:
                problems.add(InvalidTransitionError)
        try:
            genome = _json_object(new.genome)
            mutation = None if new.mutation is None else _json_object(new.mutation)
            descriptors = _json_object(new.descriptors)
        except (TypeError, ValueError) as exc:
            problems.add(type(exc))
        if problems:
            raise Refused(problems)
        cid = max(after, default=0) + 1
        after[cid] = Candidate(
            id=cid, slot=new.slot, kind=new.kind, genome=genome,
            parent_ids=tuple(new.parent_ids), operator=new.operator,
            generation=new.generation, status=Status.PENDING, reason=None, retired_by=None,
            scores={}, mutation=mutation, usage=new.usage, timings={},
            descriptors=descriptors, created_at=now, updated_at=now,
            fingerprint=new.fingerprint)
        for rid in retire:
            after[rid] = dataclasses.replace(after[rid], retired_by=cid, updated_at=now)
        return cid

    @staticmethod
    def _change(after: dict[int, Candidate], change: Finish | AddScores,
                now: float) -> Candidate:
        current = after.get(change.candidate_id)
        if current is None:
            raise Refused({UnknownCandidateError})
        problems: set[type[Exception]] = set()
        scores = dict(current.scores)
        if isinstance(change, Finish):
            status = Status(change.status)
            if status is Status.PENDING or current.status is not Status.PENDING:
                problems.add(InvalidTransitionError)
            if status in (Status.FAILED, Status.INVALID) and not change.reason:
                problems.add(InvalidTransitionError)
            if change.failure is not None and (
                    status not in (Status.FAILED, Status.INVALID)
                    or change.failure not in {f.value for f in Failure}):
                problems.add(InvalidTransitionError)
            splits = [score.split for score in change.scores]
            if len(set(splits)) < len(splits):
                problems.add(ValueError)
            new_scores = change.scores
            try:
                timings = {**current.timings, **_json_object(change.timings or {})}
            except (TypeError, ValueError) as exc:
                problems.add(type(exc))
        else:
            status, timings = current.status, current.timings
            if current.status is not Status.EVALUATED:
                problems.add(InvalidTransitionError)
            new_scores = [change.score]
        for score in new_scores:
            try:
                scores[score.split] = _as_stored(score)
            except ValueError:
                problems.add(ValueError)
        if problems:
            raise Refused(problems)
        reason = change.reason if isinstance(change, Finish) else current.reason
        failure = (current.failure if not isinstance(change, Finish)
                   else None if change.failure is None else Failure(change.failure))
        after[current.id] = dataclasses.replace(
            current, status=status, reason=reason, failure=failure, scores=scores,
            timings=timings, usage=current.usage + change.usage, updated_at=now)
        if status in (Status.FAILED, Status.INVALID):  # its retirees are alive again
            for c in list(after.values()):
                if c.retired_by == current.id:
                    after[c.id] = dataclasses.replace(c, retired_by=None, updated_at=now)
        return after[current.id]


# -- random histories for the model ----------------------------------------------------------
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=2).map(tuple)
    | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=3),
    max_leaves=5)
_usages = st.builds(Usage, *[st.integers(0, 1000)] * 4)
_picks = st.lists(st.integers(0, 1000), max_size=2)  # candidates (see _pick)
_meta = st.none() | st.dictionaries(st.sampled_from(["a", "b"]), _json_values, max_size=2)


def _mostly(values: st.SearchStrategy[float], bad: float) -> st.SearchStrategy[float]:
    """``values``, and ``bad`` (which JSON cannot hold) one time in ten."""
    return st.tuples(st.integers(0, 9), values).map(lambda t: bad if t[0] == 0 else t[1])


_split_scores = st.builds(
    SplitScore, st.sampled_from(["train", "validation"]), _mostly(st.floats(-1, 2), math.nan),
    st.lists(st.builds(ExampleScore, st.text(max_size=3), _mostly(st.floats(0, 1), math.inf),
                       st.text(max_size=4)), max_size=2).map(tuple))
#: a new candidate: slot (None: the next free one), parent picks, retire picks, values
_new_items = st.tuples(
    st.none() | st.integers(0, 6), _picks, _picks,
    st.dictionaries(st.text(max_size=3), _json_values, max_size=3),
    st.none() | st.dictionaries(st.text(max_size=3), _json_values, max_size=2),
    _usages, st.dictionaries(st.text(max_size=2), st.floats(-5, 5), max_size=2),
    st.none() | st.sampled_from(["fa", "fb"]))
_finishes = st.tuples(
    st.just("finish"), st.integers(0, 1000),
    st.sampled_from([Status.EVALUATED, *Status]),
    st.none() | st.text(max_size=3), st.lists(_split_scores, max_size=2), _usages,
    st.none() | st.dictionaries(st.sampled_from(["mutate", "evaluate"]), st.floats(0, 9)),
    st.none() | st.sampled_from([*Failure, "no_such_kind"]))
_score_changes = st.tuples(st.just("scores"), st.integers(0, 1000), _split_scores, _usages)
_changes = _finishes | _score_changes
#: one step of a history, resolved against the model's candidates by ``_resolve``
history_steps = st.one_of(
    st.tuples(st.just("add"), _new_items),
    st.tuples(st.just("add_batch"), st.lists(_new_items, max_size=3), _meta),
    st.tuples(st.just("finish"), _finishes, _meta),
    st.tuples(st.just("add_scores"), _score_changes),
    st.tuples(st.just("write"), st.lists(_new_items, max_size=2),
              st.lists(_changes, max_size=3), _meta),
)


#: the start of every history: three founders, so that the first steps have parents
FOUNDERS = ("add_batch", [(None, [], [], {"founder": i}, None, Usage(), {}, f"f{i % 2}")
                          for i in range(3)], None)


def _pick(model: ReferenceArchive, pick: int, added: int,
          want: Status | None = None) -> int:
    """The id that ``pick`` names: one of the model's candidates or of ``added`` made
    earlier in the same write (pending ones). With ``want``, mostly one in that status and
    one time in four one in another. One time in eight, the id the next candidate would
    get, which does not exist yet."""
    top = max(model.candidates, default=0)
    statuses = {cid: c.status for cid, c in model.candidates.items()}
    statuses.update({top + i: Status.PENDING for i in range(1, added + 1)})
    if pick % 8 == 7 or not statuses:
        return top + added + 1
    pool = list(statuses)
    if want is not None:
        wanted = pick % 8 < 5
        pool = [cid for cid, status in statuses.items() if (status is want) == wanted] or pool
    return pool[pick // 8 % len(pool)]


def _resolve_new(model: ReferenceArchive, items: Sequence[tuple[Any, ...]]
                 ) -> list[tuple[NewCandidate, list[int]]]:
    free = max((c.slot for c in model.candidates.values()), default=-1) + 1
    resolved = []
    for i, (slot, parents, retire, genome, mutation, usage, descriptors,
            fingerprint) in enumerate(items):
        resolved.append((NewCandidate(
            free + i if slot is None else slot, "prompt", genome,
            tuple(_pick(model, p, i) for p in parents), "mutate", len(parents), mutation,
            usage, descriptors, fingerprint), [_pick(model, p, i) for p in retire]))
    return resolved


def _resolve_change(model: ReferenceArchive, change: tuple[Any, ...],
                    added: int) -> Finish | AddScores:
    if change[0] == "finish":
        _, pick, status, reason, scores, usage, timings, failure = change
        return Finish(_pick(model, pick, added, Status.PENDING), status, reason,
                      tuple(scores), usage, timings, failure)
    _, pick, score, usage = change
    return AddScores(_pick(model, pick, added, Status.EVALUATED), score, usage)


def _resolve(model: ReferenceArchive, step: tuple[Any, ...]) -> tuple[
        Callable[[ArchiveStorage], list[Candidate]], dict[str, Any]]:
    """The storage call that performs ``step``, and the arguments of ``model.write``."""
    kind = step[0]
    if kind == "add":
        [(item, retire)] = _resolve_new(model, [step[1]])
        return (lambda s: [s.add_candidate(item, retire)]), {"new": [(item, retire)]}
    if kind == "add_batch":
        items, meta = _resolve_new(model, step[1]), step[2]
        return (lambda s: s.add_candidates(items, meta)), {"new": items, "meta": meta}
    if kind == "finish":
        f, meta = _resolve_change(model, step[1], 0), step[2]
        assert isinstance(f, Finish)
        return (lambda s: [s.finish_candidate(
            f.candidate_id, f.status, reason=f.reason, scores=f.scores, usage=f.usage,
            timings=f.timings, failure=f.failure, meta=meta)]), {"changes": [f], "meta": meta}
    if kind == "add_scores":
        a = _resolve_change(model, step[1], 0)
        assert isinstance(a, AddScores)
        return (lambda s: [s.add_scores(a.candidate_id, a.score, a.usage)]), {"changes": [a]}
    items = _resolve_new(model, step[1])
    changes = [_resolve_change(model, c, len(items)) for c in step[2]]
    return ((lambda s: s.write(changes, new=items, meta=step[3])),
            {"changes": changes, "new": items, "meta": step[3]})


def check_step(storage: ArchiveStorage, clock: TickClock, model: ReferenceArchive,
               step: tuple[Any, ...]) -> None:
    """Performs ``step`` on the storage and on the model, and asserts that they agree: on
    the result or the error, and on every candidate and metadata value afterwards."""
    call, args = _resolve(model, step)
    try:
        got: list[Candidate] | Exception = call(storage)
    except Exception as exc:  # compared with what the model expects
        got = exc
    try:
        want = model.write(**args, now=clock.last())
    except Refused as refused:
        assert isinstance(got, Exception), f"the storage accepted a write to refuse ({refused})"
        assert type(got) in refused.allowed, f"the storage raised {got!r}, not one of {refused}"
    else:
        if isinstance(got, Exception):
            raise AssertionError(f"the storage refused a valid write: {got!r}") from got
        assert got == want, "the storage returned other records than the model"
    assert storage.index.candidates() == model.in_id_order()
    assert storage.meta_items() == model.meta
    check_index_consistent(storage.index)


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

    @pytest.mark.parametrize("status", [Status.FAILED, Status.INVALID])
    def test_a_child_that_is_not_evaluated_gives_its_retirees_back(
            self, factory: StorageFactory, status: Status) -> None:
        """A retirement holds only for a child that joins the population: one that ends
        failed or invalid makes its retirees alive again, durably; an evaluated one's stay
        retired; in one batch the retirement and its undoing both apply."""
        s = factory.create()
        for slot in range(4):
            s.add_candidate(new(slot))
            s.finish_candidate(slot + 1, Status.EVALUATED, scores=[train(0.1 * slot)])
        kept = s.add_candidate(new(4, (1,)), retire=[2])
        lost = s.add_candidate(new(5, (1,)), retire=[3, 4])
        assert s.index.retirees(lost.id) == [s.get(3), s.get(4)]
        s.finish_candidate(kept.id, Status.EVALUATED, scores=[train(0.9)])
        s.finish_candidate(lost.id, status, reason="crash")
        assert s.get(2).retired_by == kept.id and s.index.retirees(kept.id) == [s.get(2)]
        assert s.get(3).alive and s.get(4).alive and s.index.retirees(lost.id) == []
        assert s.get(3).updated_at == s.get(lost.id).updated_at
        assert s.index.population_ids().tolist() == [1, 3, 4, kept.id]
        again = s.add_candidate(new(6, (1,)), retire=[3])  # a given-back one can lose again
        assert s.get(3).retired_by == again.id
        [both, _] = s.write([Finish(8, status, reason="crash")],
                            new=[(new(7, (1,)), [4])])
        assert both.id == 8 and s.get(4).alive
        check_index_consistent(s.index)
        if not factory.persistent:
            return
        reopened = factory.reopen(s)
        assert [c.retired_by for c in reopened.index.candidates()] == \
            [None, kept.id, again.id, None, None, None, None, None]
        assert reopened.index.retirees(kept.id) == [reopened.get(2)]
        reopened.close()

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
        assert s.get(1).failure is None

    def test_failure_kind(self, factory: StorageFactory) -> None:
        """A failed or invalid candidate keeps its reason's kind; an evaluated one has none,
        and a kind outside the fixed set is refused."""
        s = factory.create()
        for slot in range(4):
            s.add_candidate(new(slot))
        assert s.finish_candidate(1, Status.INVALID, reason="no block in the answer",
                                  failure="no_block").failure is Failure.NO_BLOCK
        assert s.finish_candidate(2, Status.FAILED, reason="timed out",
                                  failure=Failure.TIMEOUT).failure is Failure.TIMEOUT
        with pytest.raises(InvalidTransitionError, match="no failure kind"):
            s.finish_candidate(3, Status.EVALUATED, failure="timeout")
        with pytest.raises(InvalidTransitionError, match="unknown failure kind"):
            s.finish_candidate(3, Status.FAILED, reason="x", failure="gremlins")
        assert s.get(3).status is Status.PENDING and s.get(3).failure is None
        assert [s.get(i).failure for i in (1, 2)] == [Failure.NO_BLOCK, Failure.TIMEOUT]

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

    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps=st.lists(history_steps, min_size=5, max_size=30))
    def test_agrees_with_the_reference_model(self, factory: StorageFactory,
                                             steps: list[tuple[Any, ...]]) -> None:
        s = factory.create()  # a new storage for each history (the factory is reused)
        model = ReferenceArchive()
        try:
            for step in [FOUNDERS, *steps]:
                check_step(s, factory.clock, model, step)
            if factory.persistent:
                s = factory.reopen(s)
                assert s.index.candidates() == model.in_id_order()
                assert s.meta_items() == model.meta
        finally:
            s.close()

    def test_context_manager_closes(self, factory: StorageFactory) -> None:
        with factory.create() as s:
            s.add_candidate(new(0))
        if factory.persistent:
            with pytest.raises(ArchiveError):
                s.add_candidate(new(1))
