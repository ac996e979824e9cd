"""SQLiteStorage specifics: the file, its schema, transactions on disk and kill-safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import archive._sqlite as sqlite_module
from archive import (
    SCHEMA_VERSION,
    ArchiveError,
    Failure,
    SQLiteStorage,
    Status,
)

from .conformance import TickClock, assert_same_archive, build_sample, new, snapshot, train

REPO = Path(__file__).resolve().parents[2]


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def sql(path: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on its own connection (as another program would)."""
    conn = raw(path)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def test_reopen_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with SQLiteStorage(path, clock=TickClock()) as s:
        build_sample(s)
        before = snapshot(s)
    with SQLiteStorage(path) as again:
        assert snapshot(again) == before
        assert again.get(4).created_at == before["candidates"][3].created_at
        with SQLiteStorage(path) as third:  # a second connection reads the same
            assert_same_archive(again, third)


def test_schema_layout_and_version(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    SQLiteStorage(path).close()
    conn = raw(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"schema_version", "meta", "candidates", "edges", "scores", "llm_cache"}
    columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    assert columns["edges"] == ["parent_id", "child_id", "position"]
    assert columns["scores"] == ["candidate_id", "split", "mean", "examples"]
    assert columns["llm_cache"] == ["key", "request", "response", "created_at"]
    assert {"genome", "mutation", "timings", "descriptors", "usage", "retired_by",
            "slot", "status"} <= set(columns["candidates"])
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    SQLiteStorage(path).close()
    sql(path, "UPDATE schema_version SET version = ?", SCHEMA_VERSION + 1)
    with pytest.raises(ArchiveError, match="upgrade Cladeforge"):
        SQLiteStorage(path)


def test_migrations_run_once_in_one_transaction(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.db"
    with SQLiteStorage(path) as s:
        s.add_candidate(new(0))
    ran: list[int] = []
    current = SCHEMA_VERSION

    def add_notes(conn: sqlite3.Connection) -> None:
        ran.append(current + 1)
        conn.execute("CREATE TABLE notes (text TEXT)")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, broken))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", current + 1)
    with pytest.raises(ArchiveError, match="no_such_table"):
        SQLiteStorage(path)
    assert sql(path, "SELECT version FROM schema_version") == [(current,)]
    assert sql(path, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []

    monkeypatch.setattr(sqlite_module, "MIGRATIONS",
                        (*sqlite_module.MIGRATIONS[:current], add_notes))
    for _ in range(2):
        with SQLiteStorage(path) as s:
            assert len(s) == 1
    assert ran == [current + 1]
    assert sql(path, "SELECT version FROM schema_version") == [(current + 1,)]


def test_version_1_archive_gains_failure_kinds(tmp_path: Path) -> None:
    """An archive written before failure kinds opens: its failed candidates keep their
    reason with no kind, and new ones record their kind."""
    path = tmp_path / "run.db"
    conn = raw(path)
    with conn:
        sqlite_module.MIGRATIONS[0](conn)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO candidates (id, slot, kind, genome, operator, generation, status, "
            "reason, retired_by, mutation, usage, timings, descriptors, created_at, updated_at) "
            "VALUES (1, 0, 'prompt', '{}', 'seed', 0, 'failed', 'crash', NULL, NULL, '{}', '{}', "
            "'{}', 1.0, 1.0)")
    conn.close()
    with SQLiteStorage(path) as s:
        old = s.get(1)
        assert (old.status, old.reason, old.failure) == (Status.FAILED, "crash", None)
        s.add_candidate(new(1))
        s.finish_candidate(2, Status.INVALID, reason="no block", failure="no_block")
    with SQLiteStorage(path) as again:
        assert again.get(2).failure is Failure.NO_BLOCK and again.get(1).failure is None
    assert sql(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


@pytest.mark.parametrize("content", [os.urandom(4096), b"just some text\n" * 100])
def test_not_a_database(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.db"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match="not a Cladeforge archive"):
        SQLiteStorage(path)
    assert path.read_bytes() == content  # left untouched


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sql(path, "CREATE TABLE users (name TEXT)")
    with pytest.raises(ArchiveError, match="not a Cladeforge archive.*users"):
        SQLiteStorage(path)


def test_damaged_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    SQLiteStorage(path).close()
    sql(path, "DROP TABLE scores")
    with pytest.raises(ArchiveError, match="damaged.*scores"):
        SQLiteStorage(path)


def test_undecodable_row_is_reported_as_damage(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with SQLiteStorage(path) as s:
        s.add_candidate(new(0))
    sql(path, "UPDATE candidates SET genome = '{not json'")
    with pytest.raises(ArchiveError, match="damaged"):
        SQLiteStorage(path)


def test_empty_file_becomes_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    path.touch()
    with SQLiteStorage(path) as s:
        s.add_candidate(new(0))
    with SQLiteStorage(path) as s:
        assert len(s) == 1


def test_unopenable_paths(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="cannot open"):
        SQLiteStorage(tmp_path / "missing-dir" / "run.db")
    assert not (tmp_path / "missing-dir").exists()  # the constructor creates no directory
    with pytest.raises(ArchiveError):
        SQLiteStorage(tmp_path)


def test_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with SQLiteStorage(path) as s:
        conn = s._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn = raw(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    conn.close()


def test_wal_checkpoints_run_in_the_background(tmp_path: Path) -> None:
    """The writer never checkpoints (a checkpoint fsyncs: 10 ms inside a commit); the
    background thread does, so the log is copied back and gets reused."""
    path = tmp_path / "run.db"
    with SQLiteStorage(path) as s:
        assert s._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        s.add_candidates([(new(slot, genome={"prompt": "x" * 3000}), []) for slot in range(300)])
        deadline = time.monotonic() + 10
        while path.stat().st_size < 300 * 3000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size > 300 * 3000  # the pages were copied into the database
        assert any(t.name == "archive-checkpoint" for t in threading.enumerate())
    assert not any(t.name == "archive-checkpoint" for t in threading.enumerate())
    with SQLiteStorage(path) as again:
        assert len(again) == 300


def test_database_failure_rolls_back_add(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    s = SQLiteStorage(path)
    s.add_candidate(new(0))
    sql(path, "CREATE TRIGGER boom BEFORE INSERT ON edges BEGIN "  # fails after the row
        "SELECT RAISE(ABORT, 'disk on fire'); END")
    before = snapshot(s)
    with pytest.raises(ArchiveError, match="disk on fire"):
        s.add_candidate(new(1, (1,)), retire=[1])
    assert snapshot(s) == before
    assert sql(path, "SELECT count(*) FROM candidates") == [(1,)]
    with pytest.raises(ArchiveError, match="disk on fire"):  # a batch fails whole
        s.add_candidates([(new(1), [1]), (new(2, (1,)), [])], meta={"generation": 1})
    assert snapshot(s) == before
    sql(path, "DROP TRIGGER boom")
    assert s.add_candidate(new(1, (1,)), retire=[1]).id == 2
    s.close()
    with SQLiteStorage(path) as again:
        assert again.get(1).retired_by == 2 and len(again) == 2


def test_database_failure_rolls_back_finish(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    s = SQLiteStorage(path)
    s.add_candidate(new(0))
    sql(path, "CREATE TRIGGER boom BEFORE INSERT ON scores BEGIN "
        "SELECT RAISE(ABORT, 'disk on fire'); END")
    with pytest.raises(ArchiveError, match="disk on fire"):
        s.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)], meta={"done": 1})
    assert s.get(1).status is Status.PENDING and s.get_meta("done") is None
    s.close()
    with SQLiteStorage(path) as again:
        assert again.get(1).status is Status.PENDING and again.get_meta("done") is None


def test_usable_from_another_thread(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "run.db") as s:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                s.add_candidate(new(0))
                s.finish_candidate(1, Status.EVALUATED, scores=[train(0.5)])
            except BaseException as exc:  # reported to the main thread below
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert errors == [] and s.get(1).fitness == 0.5


# -- kill safety ----------------------------------------------------------------------------
WRITER = """
import sys
from archive import ExampleScore, NewCandidate, SplitScore, SQLiteStorage, Status

s = SQLiteStorage(sys.argv[1])
for c in s.index.candidates(status=Status.PENDING):
    s.finish_candidate(c.id, Status.FAILED, reason="interrupted")
print("ready", flush=True)
slot = s.index.next_slot()
while True:
    m = s.index.max_id()
    parents = sorted({p for p in (m, m // 2) if p > 0})
    retire = [m - 3] if m > 3 and s.index.get(m - 3).alive else []
    genome = {"text": "x" * 300, "parents": parents, "retire": retire}
    c = s.add_candidate(NewCandidate(slot, "prompt", genome, tuple(parents), "mutate",
                                     mutation={"response": "y" * 3000}), retire=retire)
    slot += 1
    examples = tuple(ExampleScore(str(i), 0.5, "o" * 100) for i in range(5))
    s.finish_candidate(c.id, Status.EVALUATED, scores=[SplitScore("train", 0.5, examples)],
                       meta={"last_finished": c.id})
"""


def check_index(s: SQLiteStorage, *, writer_running: bool = False) -> int:
    """Every candidate in ``s`` is complete; returns how many there are."""
    cands = s.index.candidates()
    assert [c.id for c in cands] == list(range(1, len(cands) + 1))
    assert [c.slot for c in cands] == list(range(len(cands)))
    for c in cands:
        assert list(c.parent_ids) == c.genome["parents"]
        # an interrupted (failed) candidate gave its retirees back
        assert all((s.get(r).retired_by == c.id) is (c.status is not Status.FAILED)
                   for r in c.genome["retire"])
        assert c.retired_by is None or c.id in s.get(c.retired_by).genome["retire"]
        assert c.mutation == {"response": "y" * 3000}
        if c.status is Status.EVALUATED:
            assert len(c.scores["train"].examples) == 5
        else:
            assert c.scores == {}
            assert c.status is Status.PENDING or c.reason == "interrupted"
    pending = [c.id for c in cands if c.status is Status.PENDING]
    assert pending in ([], [len(cands)])  # only the newest can be caught unfinished
    evaluated = [c.id for c in cands if c.status is Status.EVALUATED]
    assert s.get_meta("last_finished") == max(evaluated, default=None) or writer_running
    return len(cands)


def check_consistent(path: Path) -> int:
    conn = raw(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    with SQLiteStorage(path) as s:
        return check_index(s)


def start_writer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def test_open_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    proc = start_writer(path)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.2)
        counts = []
        for _ in range(6):  # each open loads one consistent snapshot of all tables
            with SQLiteStorage(path) as s:
                counts.append(check_index(s, writer_running=True))
        assert proc.poll() is None and counts[-1] > counts[0] > 0
    finally:
        stop(proc)


def test_sigkill_at_random_moments_leaves_consistent_archive(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    counts = []
    for attempt in range(5):
        proc = start_writer(path)
        if attempt == 0:
            time.sleep(rng.uniform(0.0, 0.3))  # may hit creation of the schema
        else:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0.05, 0.4))
        stop(proc)
        assert proc.returncode == -signal.SIGKILL, f"writer died early (seed {seed})"
        counts.append(check_consistent(path) if path.exists() else 0)
    assert counts[-1] > counts[1] > 0, f"the writer made no progress: {counts} (seed {seed})"
