"""WAL checkpoints in a background thread.

In WAL mode SQLite copies the log back into the database file (a checkpoint)
when the log passes 1000 pages, inside whichever COMMIT crossed the mark; with
``synchronous = NORMAL`` that checkpoint ``fsync``s, so every few hundred
commits one would stall the event loop for an ``fsync``. The archive's writing
connection therefore turns automatic checkpoints off, and this thread runs a
PASSIVE checkpoint (it never waits for, nor blocks, the writer) on its own
connection at most every ``interval`` seconds while there are new commits.
SQLite releases the GIL while it copies and syncs.
"""

from __future__ import annotations

import sqlite3
import threading
from os import PathLike


class Checkpointer:
    """Checkpoints the WAL of the database at ``path`` after commits, off the caller's
    thread. ``committed()`` after each commit; ``close()`` stops the thread."""

    def __init__(self, path: str | PathLike[str], *, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many ran (for tests and benchmarks)

    def committed(self) -> None:
        """Note a commit; the thread starts with the first one."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="archive-checkpoint",
                                            daemon=True)
            self._thread.start()
        self._dirty.set()

    def close(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None,
                               check_same_thread=False)
        try:
            while True:
                self._dirty.wait()
                if self._stop.is_set():
                    return
                self._dirty.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    pass  # e.g. the file went away; the writer reports its own errors
                if self._stop.wait(self.interval):
                    return
        finally:
            conn.close()
