"""The durable archive: one SQLite database file per run (WAL journal).

Each state-changing method is one ``BEGIN IMMEDIATE ... COMMIT`` transaction
and publishes its new records to the index only after the commit succeeded,
so the index never shows what the file does not hold. A process killed at any
instant leaves the file at the last commit. One process writes an archive at a
time; other processes may read it (WAL lets readers and the writer overlap).
"""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import Any

from . import _changes, _json
from ._checkpointer import Checkpointer
from ._errors import ArchiveError, InvalidTransitionError
from ._index import ArchiveIndex
from ._records import (
    CacheEntry,
    Candidate,
    Change,
    ExampleScore,
    Failure,
    NewCandidate,
    SplitScore,
    Status,
    Usage,
)
from ._storage import ArchiveStorage

_SCHEMA_V1 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE candidates (
        id INTEGER PRIMARY KEY,
        slot INTEGER NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        genome TEXT NOT NULL,
        operator TEXT NOT NULL,
        generation INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'evaluated', 'failed', 'invalid')),
        reason TEXT,
        retired_by INTEGER,
        mutation TEXT,
        usage TEXT NOT NULL,
        timings TEXT NOT NULL,
        descriptors TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL)""",
    """CREATE TABLE edges (
        parent_id INTEGER NOT NULL REFERENCES candidates (id),
        child_id INTEGER NOT NULL REFERENCES candidates (id),
        position INTEGER NOT NULL,
        PRIMARY KEY (child_id, position))""",
    """CREATE TABLE scores (
        candidate_id INTEGER NOT NULL REFERENCES candidates (id),
        split TEXT NOT NULL,
        mean REAL NOT NULL,
        examples TEXT NOT NULL,
        PRIMARY KEY (candidate_id, split))""",
    """CREATE TABLE llm_cache (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at REAL NOT NULL)""",
)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1:
        conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """The kind of a failed or invalid candidate's reason (``Failure``) and each
    candidate's fingerprint; NULL for the candidates of older archives."""
    conn.execute("ALTER TABLE candidates ADD COLUMN failure TEXT")
    conn.execute("ALTER TABLE candidates ADD COLUMN fingerprint TEXT")


#: ``MIGRATIONS[v]`` takes a database from schema version ``v`` to ``v + 1``
#: (version 0 is the empty file). Append a function here for every schema change.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1,
                                                                  _migrate_1_to_2)
SCHEMA_VERSION = len(MIGRATIONS)
_TABLES = frozenset({"schema_version", "meta", "candidates", "edges", "scores", "llm_cache"})

_COLUMNS = ("id, slot, kind, genome, operator, generation, status, reason, retired_by, "
            "mutation, usage, timings, descriptors, created_at, updated_at, failure, fingerprint")
_INSERT_CANDIDATE = f"INSERT INTO candidates ({_COLUMNS}) VALUES ({', '.join('?' * 17)})"
_INSERT_EDGE = "INSERT INTO edges (parent_id, child_id, position) VALUES (?, ?, ?)"
_UPSERT_SCORE = ("INSERT INTO scores (candidate_id, split, mean, examples) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (candidate_id, split) DO UPDATE "
                 "SET mean = excluded.mean, examples = excluded.examples")
_UPSERT_META = ("INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
_RETIRE = "UPDATE candidates SET retired_by = ?, updated_at = ? WHERE id = ?"
_CHANGE = ("UPDATE candidates SET status = ?, reason = ?, failure = ?, usage = ?, timings = ?, "
           "updated_at = ? WHERE id = ? AND status = ?")
_INSERT_CACHE = ("INSERT OR IGNORE INTO llm_cache (key, request, response, created_at) "
                 "VALUES (?, ?, ?, ?)")
_CACHE_PAGE = 500
_STATUSES = {s.value: s for s in Status}
_FAILURES: dict[str | None, Failure | None] = {None: None, **{f.value: f for f in Failure}}
_DECODER = json.JSONDecoder()  # stateless, reused


def _loads(text: str) -> Any:
    """``json.loads`` for the compact JSON this module wrote (no surrounding whitespace)."""
    return _DECODER.raw_decode(text)[0]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading: the load makes millions of
    acyclic objects, and the collections they would trigger triple the opening time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode_candidate(row: Sequence[Any], parents: Sequence[int],
                     scores: Mapping[str, SplitScore], usage: Usage | None = None) -> Candidate:
    """The candidate of a row of ``SELECT {_COLUMNS} FROM candidates``, with its parents (in
    position order) and scores; ``usage``: its decoded usage column, if already at hand."""
    (cid, slot, kind, genome, op, generation, status, reason, retired_by, mutation,
     usage_text, timings, descriptors, created_at, updated_at, failure, fingerprint) = row
    return Candidate(
        cid, slot, kind, _loads(genome), tuple(parents), op, generation, _STATUSES[status],
        reason, retired_by, dict(scores), None if mutation is None else _loads(mutation),
        usage if usage is not None else Usage.from_dict(_loads(usage_text)), _loads(timings),
        _loads(descriptors), created_at, updated_at, _FAILURES.get(failure), fingerprint)


def _example_scores(text: str) -> tuple[ExampleScore, ...]:
    """Decode an ``examples`` column. There can be millions of examples in an archive, so
    the records are restored the way unpickling restores them, without ``__init__``."""
    new = object.__new__
    result = []
    for example_id, score, output in _loads(text):
        e = new(ExampleScore)
        e.__dict__.update(example_id=example_id, score=score, output=output)
        result.append(e)
    return tuple(result)


def _candidate_row(plan: _changes.Plan) -> tuple[Any, ...]:
    c, t = plan.candidate, plan.texts
    return (c.id, c.slot, c.kind, t["genome"], c.operator, c.generation, c.status.value,
            c.reason, c.retired_by, t["mutation"], t["usage"], t["timings"], t["descriptors"],
            c.created_at, c.updated_at, None if c.failure is None else c.failure.value,
            c.fingerprint)


def _score_rows(plan: _changes.Plan) -> list[tuple[Any, ...]]:
    c = plan.candidate
    return [(c.id, split, c.scores[split].mean, examples)
            for split, examples in plan.score_texts.items()]


class SQLiteStorage(ArchiveStorage):
    """An :class:`ArchiveStorage` in an SQLite file, created if missing.

    Opening reads the whole archive into the index. Raises :class:`ArchiveError`
    when the file is not a Cladeforge archive or was written by a newer version.
    ``clock`` gives the timestamps (``time.time`` by default).
    """

    def __init__(
        self, path: str | PathLike[str], *, clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
    ) -> None:
        self.path = path
        self.index = ArchiveIndex()
        self._clock = clock
        self._lock = threading.RLock()
        # keys of the LLM cache: a miss (most lookups of a live run) costs no query
        self._cache_keys: set[str] = set()
        self._checkpointer = Checkpointer(path)
        try:
            self._conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot open archive {path}: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._checkpointer.close()
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> None:
        conn = self._conn
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            self._check_version(self._schema_version())
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the Checkpointer's job
            if self._schema_version() < SCHEMA_VERSION:
                with self._transaction():  # re-read: another process may have migrated
                    version = self._schema_version()
                    self._check_version(version)
                    for migrate in MIGRATIONS[version:]:
                        migrate(conn)
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)",
                                 (SCHEMA_VERSION,))
            conn.execute("BEGIN")  # one read transaction: a consistent snapshot of all tables
            try:
                with _gc_paused():
                    self._load()
            finally:
                conn.rollback()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname == "SQLITE_NOTADB":
                raise ArchiveError(f"{self.path} is not a Cladeforge archive "
                                   "(not an SQLite database)") from exc
            raise ArchiveError(f"cannot open archive {self.path}: {exc}") from exc
        except (ValueError, KeyError) as exc:  # undecodable JSON, unknown status, ...
            raise ArchiveError(f"archive {self.path} is damaged: {exc!r}") from exc

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"archive {self.path} has schema version {version}, but this Cladeforge "
                f"knows versions up to {SCHEMA_VERSION}: upgrade Cladeforge to open it")

    def _schema_version(self) -> int:
        tables = {name for (name,) in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        if not tables:
            return 0
        if "schema_version" not in tables:
            raise ArchiveError(
                f"{self.path} is an SQLite database but not a Cladeforge archive "
                f"(it has tables {', '.join(sorted(tables))} and no schema_version)")
        rows = self._conn.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int):
            raise ArchiveError(f"archive {self.path} is damaged: bad schema_version {rows}")
        version = rows[0][0]
        if version == SCHEMA_VERSION and not _TABLES <= tables:
            raise ArchiveError(f"archive {self.path} is damaged: tables "
                               f"{', '.join(sorted(_TABLES - tables))} are missing")
        return version

    def _load(self) -> None:
        conn = self._conn
        self._cache_keys = {key for (key,) in conn.execute("SELECT key FROM llm_cache")}
        parents: dict[int, list[int]] = {}
        for child, parent in conn.execute(
                "SELECT child_id, parent_id FROM edges ORDER BY child_id, position"):
            parents.setdefault(child, []).append(parent)
        scores: dict[int, dict[str, SplitScore]] = {}
        for cid, split, mean, examples in conn.execute(
                "SELECT candidate_id, split, mean, examples FROM scores"):
            scores.setdefault(cid, {})[split] = SplitScore(split, mean, _example_scores(examples))
        loads = _loads
        usages: dict[str, Usage] = {}  # Usage is immutable: share equal ones
        put = self.index.publish
        cursor = conn.execute(f"SELECT {_COLUMNS} FROM candidates ORDER BY id")
        while rows := cursor.fetchmany(4096):
            for row in rows:
                usage = row[10]
                u = usages.get(usage)
                if u is None:
                    u = usages[usage] = Usage.from_dict(loads(usage))
                put(decode_candidate(row, parents.get(row[0], ()), scores.get(row[0], {}), u))

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; sqlite3 errors become ArchiveError (rolled back)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
        except sqlite3.Error as exc:
            raise ArchiveError(f"archive {self.path}: {exc}") from exc
        self._checkpointer.committed()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise ArchiveError(f"archive {self.path}: {exc}") from exc

    # -- run metadata -------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return default if not rows else json.loads(rows[0][0])

    def set_meta(self, values: Mapping[str, Any]) -> None:
        rows = _json.encode_meta(values)
        with self._lock, self._transaction() as conn:
            conn.executemany(_UPSERT_META, rows)

    def meta_items(self) -> dict[str, Any]:
        return {key: json.loads(value)
                for key, value in self._read("SELECT key, value FROM meta ORDER BY key")}

    # -- candidates -------------------------------------------------------------------
    @staticmethod
    def _insert_new(conn: sqlite3.Connection, plan: _changes.Plan) -> None:
        c = plan.candidate
        conn.execute(_INSERT_CANDIDATE, _candidate_row(plan))
        if c.parent_ids:
            conn.executemany(_INSERT_EDGE, [(pid, c.id, i) for i, pid in enumerate(c.parent_ids)])
        SQLiteStorage._write_retirements(conn, plan)

    @staticmethod
    def _write_retirements(conn: sqlite3.Connection, plan: _changes.Plan) -> None:
        if plan.retired:
            conn.executemany(_RETIRE, [(r.retired_by, r.updated_at, r.id) for r in plan.retired])

    def _publish(self, plan: _changes.Plan) -> None:
        for retiree in plan.retired:
            self.index.publish(retiree)
        self.index.publish(plan.candidate)

    def write(
        self,
        changes: Sequence[Change] = (),
        *,
        new: Sequence[tuple[NewCandidate, Sequence[int]]] = (),
        cache: Sequence[CacheEntry] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> list[Candidate]:
        cache_rows = [_json.encode_cache_entry(entry) for entry in cache]
        meta_rows = _json.encode_meta(meta or {})
        if not (new or changes or cache_rows or meta_rows):
            return []
        with self._lock:
            now = self._clock()
            batch = _changes.plan_batch(self.index, new, changes, now)
            with self._transaction() as conn:
                for plan in batch.added:
                    self._insert_new(conn, plan)
                for plan in batch.changed:
                    c = plan.candidate
                    updated = conn.execute(_CHANGE, (
                        c.status.value, c.reason, None if c.failure is None else c.failure.value,
                        plan.texts["usage"], plan.texts["timings"],
                        c.updated_at, c.id, str(plan.before))).rowcount
                    if updated != 1:
                        raise InvalidTransitionError(
                            f"candidate #{c.id} is no longer {plan.before} in {self.path} "
                            "(is another process writing this archive?)")
                    if plan.score_texts:
                        conn.executemany(_UPSERT_SCORE, _score_rows(plan))
                    self._write_retirements(conn, plan)
                if cache_rows:
                    conn.executemany(_INSERT_CACHE, [(*row, now) for row in cache_rows])
                if meta_rows:
                    conn.executemany(_UPSERT_META, meta_rows)
            for plan in (*batch.added, *batch.changed):
                self._publish(plan)
            self._cache_keys.update(row[0] for row in cache_rows)
            return batch.result

    def import_candidate(self, candidate: Candidate) -> None:
        with self._lock:
            plan = _changes.plan_import(self.index, candidate)
            with self._transaction() as conn:
                self._insert_new(conn, plan)
                conn.executemany(_UPSERT_SCORE, _score_rows(plan))
            self._publish(plan)

    # -- LLM response cache -------------------------------------------------------------
    def cache_get(self, key: str) -> Mapping[str, Any] | None:
        if key not in self._cache_keys:
            return None
        rows = self._read("SELECT response FROM llm_cache WHERE key = ?", (key,))
        return None if not rows else json.loads(rows[0][0])

    def cache_items(self) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
        last = 0
        while rows := self._read(
                "SELECT rowid, key, request, response FROM llm_cache WHERE rowid > ? "
                "ORDER BY rowid LIMIT ?", (last, _CACHE_PAGE)):
            for _, key, request, response in rows:
                yield key, json.loads(request), json.loads(response)
            last = rows[-1][0]

    def cache_size(self) -> int:
        return self._read("SELECT count(*) FROM llm_cache")[0][0]

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._checkpointer.close()
            self._conn.close()
