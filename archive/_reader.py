"""A read-only view of an archive file, for tools that look at a run while it may be
running (the lineage viewer): nothing is loaded up front, every answer is one query on a
connection opened ``mode=ro`` (it cannot write, whatever a caller does), and WAL lets it
read while the run writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

from ._errors import ArchiveError, UnknownCandidateError
from ._records import Candidate, SplitScore
from ._sqlite import _COLUMNS, SCHEMA_VERSION, _example_scores, decode_candidate

#: the columns of ``graph()``, one list each, in id order
GRAPH_COLUMNS = ("id", "parents", "status", "operator", "generation", "train", "validation",
                 "retired_by", "island", "failure")


class ArchiveReader:
    """Read-only queries on the archive at ``path`` (see the module doc). Raises
    :class:`ArchiveError` when it is missing, not an archive, or of a newer schema."""

    def __init__(self, path: str | PathLike[str], *, timeout: float = 10.0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ArchiveError(f"no archive at {self.path}")
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                         timeout=timeout, check_same_thread=False)
            version = self._conn.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.path} is not a readable Cladeforge archive: {exc}"
                               ) from exc
        if version is None or version[0] > SCHEMA_VERSION or version[0] < SCHEMA_VERSION:
            self._conn.close()
            raise ArchiveError(f"archive {self.path} has schema version {version and version[0]}"
                               f"; this Cladeforge reads version {SCHEMA_VERSION} (open it "
                               "once with `evolve status` to upgrade an older one)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the queries inside see one commit of the writer."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    yield self._conn
                finally:
                    self._conn.rollback()
            except sqlite3.Error as exc:
                raise ArchiveError(f"archive {self.path}: {exc}") from exc

    def version(self) -> int:
        """A number that changes whenever another connection (the run) commits a change to
        the archive (SQLite's ``data_version``): compare it to know when to read again."""
        with self._lock:
            try:
                return int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise ArchiveError(f"archive {self.path}: {exc}") from exc

    def graph(self) -> dict[str, list[Any]]:
        """Every candidate as columns (``GRAPH_COLUMNS``): its parents (first the one it was
        selected from), status, operator, generation, mean train and validation scores
        (None: none), the id that retired it, its island descriptor and failure kind."""
        with self._snapshot() as conn:
            parents: dict[int, list[int]] = {}
            for child, parent in conn.execute(
                    "SELECT child_id, parent_id FROM edges ORDER BY child_id, position"):
                parents.setdefault(child, []).append(parent)
            rows = conn.execute(
                "SELECT c.id, c.status, c.operator, c.generation, t.mean, v.mean, "
                "c.retired_by, json_extract(c.descriptors, '$.island'), c.failure "
                "FROM candidates c "
                "LEFT JOIN scores t ON t.candidate_id = c.id AND t.split = 'train' "
                "LEFT JOIN scores v ON v.candidate_id = c.id AND v.split = 'validation' "
                "ORDER BY c.id").fetchall()
        if not rows:
            return {name: [] for name in GRAPH_COLUMNS}
        ids, status, op, generation, train, validation, retired_by, island, failure = (
            list(column) for column in zip(*rows, strict=True))
        return {"id": ids, "parents": [parents.get(cid, []) for cid in ids], "status": status,
                "operator": op, "generation": generation, "train": train,
                "validation": validation, "retired_by": retired_by,
                "island": [v if isinstance(v, int | float) else None for v in island],
                "failure": failure}

    def candidate(self, candidate_id: int) -> Candidate:
        """The whole record of one candidate. Raises ``UnknownCandidateError``."""
        with self._snapshot() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM candidates WHERE id = ?",
                               (candidate_id,)).fetchone()
            if row is None:
                raise UnknownCandidateError(f"no candidate with id {candidate_id}")
            parents = [p for (p,) in conn.execute(
                "SELECT parent_id FROM edges WHERE child_id = ? ORDER BY position",
                (candidate_id,))]
            scores = {split: SplitScore(split, mean, _example_scores(examples))
                      for split, mean, examples in conn.execute(
                          "SELECT split, mean, examples FROM scores WHERE candidate_id = ?",
                          (candidate_id,))}
        return decode_candidate(row, parents, scores)

    def children(self, candidate_id: int) -> list[int]:
        with self._snapshot() as conn:
            return [c for (c,) in conn.execute(
                "SELECT child_id FROM edges WHERE parent_id = ? ORDER BY child_id",
                (candidate_id,))]

    def meta(self) -> dict[str, Any]:
        with self._snapshot() as conn:
            return {key: json.loads(value)
                    for key, value in conn.execute("SELECT key, value FROM meta")}
