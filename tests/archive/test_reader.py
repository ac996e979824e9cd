"""ArchiveReader: the read-only view the lineage viewer reads a (possibly running) run
through. It answers as the storage that wrote the file, sees new commits, and cannot
write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from archive import (
    GRAPH_COLUMNS,
    ArchiveError,
    ArchiveReader,
    SplitScore,
    SQLiteStorage,
    Status,
    UnknownCandidateError,
)

from .conformance import build_sample, new, train


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "run.sqlite"
    with SQLiteStorage(path) as storage:
        build_sample(storage)
    return path


def test_every_candidate_reads_as_the_storage_wrote_it(sample: Path) -> None:
    with SQLiteStorage(sample) as storage:
        written = storage.index.candidates()
        meta = storage.meta_items()
    with ArchiveReader(sample) as reader:
        assert [reader.candidate(c.id) for c in written] == written
        assert reader.meta() == meta
        for c in written:
            assert reader.children(c.id) == [d.id for d in written if c.id in d.parent_ids]
        with pytest.raises(UnknownCandidateError):
            reader.candidate(10_000)


def test_the_graph_columns_are_the_candidates(sample: Path) -> None:
    with SQLiteStorage(sample) as storage:
        written = storage.index.candidates()
    with ArchiveReader(sample) as reader:
        graph = reader.graph()
    assert tuple(graph) == GRAPH_COLUMNS
    assert graph["id"] == [c.id for c in written]
    assert graph["parents"] == [list(c.parent_ids) for c in written]
    assert any(len(p) == 2 for p in graph["parents"])  # the sample has a merge
    assert graph["status"] == [c.status.value for c in written]
    assert graph["operator"] == [c.operator for c in written]
    assert graph["train"] == [c.scores["train"].mean if "train" in c.scores else None
                              for c in written]
    assert graph["retired_by"] == [c.retired_by for c in written]
    assert graph["failure"] == [None if c.failure is None else c.failure.value
                                for c in written]


def test_a_reader_sees_what_a_running_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    writer = SQLiteStorage(path)
    writer.add_candidate(new(0, descriptors={"island": 1}))
    reader = ArchiveReader(path)
    before = reader.version()
    assert reader.graph()["status"] == ["pending"] and reader.graph()["island"] == [1]
    assert reader.version() == before  # reading changes nothing
    writer.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)])
    writer.add_scores(1, SplitScore("validation", 0.25))
    writer.add_candidate(new(1, (1,)))
    assert reader.version() != before
    graph = reader.graph()
    assert graph["id"] == [1, 2] and graph["parents"] == [[], [1]]
    assert (graph["train"], graph["validation"]) == ([0.5, None], [0.25, None])
    reader.close()
    writer.close()


def test_the_reader_cannot_write_and_refuses_what_is_no_archive(sample: Path,
                                                                 tmp_path: Path) -> None:
    reader = ArchiveReader(sample)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._conn.execute("DELETE FROM candidates")
    reader.close()
    with pytest.raises(ArchiveError, match="no archive"):
        ArchiveReader(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ArchiveError, match="not a readable Cladeforge archive"):
        ArchiveReader(junk)
    newer = tmp_path / "newer.sqlite"
    SQLiteStorage(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ArchiveError, match="schema version 99"):
        ArchiveReader(newer)
