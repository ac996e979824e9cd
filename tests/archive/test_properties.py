"""Property tests: storages agree on any history, lineage invariants, copy_archive cuts."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from archive import (
    ArchiveError,
    ArchiveStorage,
    ExampleScore,
    InMemoryStorage,
    LineageGraph,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
    Usage,
    copy_archive,
)

from .conformance import TickClock, check_index_consistent, snapshot

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=6)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
usages = st.builds(Usage, *[st.integers(0, 10**6)] * 4)
means = st.floats(-1e6, 1e6, allow_nan=False) | st.just(math.nan)
split_scores = st.builds(
    SplitScore, st.sampled_from(["train", "validation", "test"]), means,
    st.lists(st.builds(ExampleScore, st.text(max_size=4), st.floats(0, 1), st.text(max_size=8)),
             max_size=3).map(tuple))


def outcome(fn: Callable[[], Any]) -> Any:
    """The result of ``fn``, or the type of the error it raised."""
    try:
        return fn()
    except (ArchiveError, KeyError, TypeError, ValueError) as exc:
        return type(exc)


class SameHistory(RuleBasedStateMachine):
    """One random history applied to both storages; the SQLite file is reopened at times."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.mem = InMemoryStorage(clock=TickClock())
        self.sql_clock = TickClock()
        self.sql = SQLiteStorage(self.dir / "a.db", clock=self.sql_clock)

    def both(self, op: Callable[[ArchiveStorage], Any]) -> None:
        a, b = outcome(lambda: op(self.mem)), outcome(lambda: op(self.sql))
        assert a == b

    def ids(self) -> list[int]:
        return [c.id for c in self.mem.index.candidates()]

    @rule(data=st.data(), genome=json_objects, usage=usages, mutation=st.none() | json_objects,
          descriptors=st.dictionaries(st.text(max_size=3), st.floats(-10, 10), max_size=2))
    def add(self, data: st.DataObject, genome: dict, usage: Usage, mutation: dict | None,
            descriptors: dict) -> None:
        known = self.ids() + [self.mem.index.max_id() + 7]  # the last one does not exist
        slot = data.draw(st.just(self.mem.index.next_slot()) | st.integers(0, 30))
        parents = tuple(data.draw(st.lists(st.sampled_from(known), max_size=2)))
        retire = data.draw(st.lists(st.sampled_from(known), max_size=2))
        new = NewCandidate(slot, "prompt", genome, parents, "mutate", len(parents), mutation,
                           usage, descriptors)
        self.both(lambda s: s.add_candidate(new, retire))

    @rule(data=st.data(), n=st.integers(0, 3), meta=st.dictionaries(st.just("g"), json_values))
    def add_batch(self, data: st.DataObject, n: int, meta: dict) -> None:
        items = []
        for i in range(n):  # later items may name earlier ones (ids known from max_id)
            known = self.ids() + [self.mem.index.max_id() + j for j in range(1, i + 2)]
            slot = data.draw(st.just(self.mem.index.next_slot() + i) | st.integers(0, 30))
            parents = tuple(data.draw(st.lists(st.sampled_from(known), max_size=2)))
            retire = data.draw(st.lists(st.sampled_from(known), max_size=2))
            items.append((NewCandidate(slot, "prompt", {"i": i}, parents), retire))
        self.both(lambda s: s.add_candidates(items, meta))

    @rule(data=st.data(), status=st.sampled_from(Status), usage=usages,
          reason=st.none() | st.text(max_size=6), scores=st.lists(split_scores, max_size=2),
          timings=st.dictionaries(st.sampled_from(["mutate", "evaluate"]), st.floats(0, 9)),
          meta=st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2))
    def finish(self, data: st.DataObject, status: Status, usage: Usage, reason: str | None,
               scores: list[SplitScore], timings: dict, meta: dict) -> None:
        cid = data.draw(st.sampled_from(self.ids() + [0]))
        self.both(lambda s: s.finish_candidate(cid, status, reason=reason, scores=scores,
                                               usage=usage, timings=timings, meta=meta))

    @rule(data=st.data(), score=split_scores, usage=usages)
    def add_scores(self, data: st.DataObject, score: SplitScore, usage: Usage) -> None:
        cid = data.draw(st.sampled_from(self.ids() + [0]))
        self.both(lambda s: s.add_scores(cid, score, usage))

    @rule(values=st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=2))
    def set_meta(self, values: dict) -> None:
        self.both(lambda s: s.set_meta(values))

    @rule(key=st.sampled_from(["k1", "k2", "k3"]), request=json_objects, response=json_objects)
    def cache_put(self, key: str, request: dict, response: dict) -> None:
        self.both(lambda s: s.cache_put(key, request, response))

    @rule()
    def reopen(self) -> None:
        before = snapshot(self.sql)
        self.sql.close()
        self.sql = SQLiteStorage(self.dir / "a.db", clock=self.sql_clock)
        assert snapshot(self.sql) == before

    @invariant()
    def same_archives(self) -> None:
        assert snapshot(self.mem) == snapshot(self.sql)
        check_index_consistent(self.sql.index)

    def teardown(self) -> None:
        self.sql.close()
        with SQLiteStorage(self.dir / "a.db") as again:
            assert snapshot(again) == snapshot(self.mem)
        shutil.rmtree(self.dir)


TestSameHistory = SameHistory.TestCase
TestSameHistory.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


# -- random lineages ---------------------------------------------------------------------
def random_archive(draw: st.DrawFn, storage: ArchiveStorage) -> None:
    """Builds a random archive: merges, retirements, every status, metadata and a cache."""
    for slot in range(draw(st.integers(1, 25))):
        ids = [c.id for c in storage.index.candidates()]
        parents = draw(st.lists(st.sampled_from(ids), max_size=3)) if ids else []
        alive = [c.id for c in storage.index.candidates(alive=True)]
        retire = draw(st.lists(st.sampled_from(alive), max_size=2)) if alive else []
        c = storage.add_candidate(NewCandidate(slot, "prompt", {"s": slot}, tuple(parents)),
                                  retire)
        status = draw(st.sampled_from(Status))
        if status is Status.EVALUATED:
            storage.finish_candidate(c.id, status, scores=[SplitScore("train", slot / 10)])
        elif status is not Status.PENDING:
            storage.finish_candidate(c.id, status, reason="because")
    storage.set_meta(draw(st.dictionaries(st.text(max_size=3), json_values, max_size=3)))
    for key in draw(st.lists(st.text(max_size=3), max_size=4)):
        storage.cache_put(key, {"q": key}, {"a": key * 2})


@st.composite
def archives(draw: st.DrawFn) -> InMemoryStorage:
    storage = InMemoryStorage()
    random_archive(draw, storage)
    return storage


@settings(max_examples=40, deadline=None)
@given(archives())
def test_lineage_invariants(storage: InMemoryStorage) -> None:
    graph = LineageGraph.from_storage(storage)
    g = graph.graph
    assert nx.is_directed_acyclic_graph(g) and len(graph) == len(storage)
    for parent, child in g.edges():
        assert parent < child and parent in storage.index
    for node in g.nodes:
        parents = graph.parents(node)
        assert graph.depth(node) == 1 + max((graph.depth(p) for p in parents), default=-1)
        expected: set[int] = set()
        for p in parents:
            expected |= {p} | graph.ancestors(p)
        assert graph.ancestors(node) == expected
        assert graph.clade(node) == {node} | {d for d in g.nodes if node in graph.ancestors(d)}
        lineage = graph.lineage(node)
        assert lineage[-1] == node and set(lineage) == expected | {node}
        assert all(lineage.index(p) < lineage.index(c) for p, c in g.subgraph(lineage).edges())
    assert graph.roots() == [c.id for c in storage.index.candidates() if not c.parent_ids]
    lines = graph.to_tree_text().splitlines()  # each node once per distinct parent
    assert len(lines) == sum(max(1, g.in_degree(n)) for n in g.nodes)
    assert sum("see above" not in line for line in lines) == len(graph)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), to_sqlite=st.booleans())
def test_copy_archive_cut(data: st.DataObject, to_sqlite: bool) -> None:
    src = data.draw(archives())
    upto = data.draw(st.none() | st.integers(0, src.index.max_id() + 1))
    with tempfile.TemporaryDirectory() as tmp:
        dst = SQLiteStorage(Path(tmp) / "fork.db") if to_sqlite else InMemoryStorage()
        with dst:
            copy_archive(src, dst, upto)
            kept = [c for c in src.index.candidates() if upto is None or c.id <= upto]
            assert [c.id for c in dst.index.candidates()] == [c.id for c in kept]
            for c in kept:
                copied = dst.get(c.id)
                assert copied.scores == c.scores and copied.genome == c.genome
                if c.retired_by is not None and (upto is None or c.retired_by <= upto):
                    assert copied == c
                else:
                    assert copied.retired_by is None and copied.alive
                    assert copied.parent_ids == c.parent_ids and copied.status == c.status
                assert copied.retired_by is None or copied.retired_by in dst.index
            check_index_consistent(dst.index)
            assert list(dst.cache_items()) == list(src.cache_items())
            assert dst.meta_items() == src.meta_items()
            if kept:
                with pytest.raises(ArchiveError, match="empty"):
                    copy_archive(src, dst)
