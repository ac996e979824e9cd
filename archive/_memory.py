"""An archive kept in memory only: for tests, dry runs and throw-away experiments."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from . import _changes, _json
from ._index import ArchiveIndex
from ._records import CacheEntry, Candidate, Change, NewCandidate
from ._storage import ArchiveStorage


class InMemoryStorage(ArchiveStorage):
    """An :class:`ArchiveStorage` that keeps everything in memory.

    It behaves exactly like :class:`~archive.SQLiteStorage` (same validation, same
    JSON normalisation of values, same clock reads) minus durability.
    ``clock`` gives the timestamps (``time.time`` by default).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.index = ArchiveIndex()
        self._clock = clock
        self._meta: dict[str, str] = {}  # key -> JSON text
        self._cache: dict[str, tuple[str, str, float]] = {}  # key -> (request, response, time)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"InMemoryStorage({len(self.index)} candidates)"

    # -- run metadata -------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            value = self._meta.get(key)
        return default if value is None else json.loads(value)

    def set_meta(self, values: Mapping[str, Any]) -> None:
        rows = _json.encode_meta(values)
        with self._lock:
            self._meta.update(rows)

    def meta_items(self) -> dict[str, Any]:
        with self._lock:
            return {key: json.loads(value) for key, value in self._meta.items()}

    # -- candidates -------------------------------------------------------------------
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
            for plan in (*batch.added, *batch.changed):
                for retiree in plan.retired:
                    self.index.publish(retiree)
                self.index.publish(plan.candidate)
            for key, request_text, response_text in cache_rows:
                self._cache.setdefault(key, (request_text, response_text, now))
            self._meta.update(meta_rows)
            return batch.result

    def import_candidate(self, candidate: Candidate) -> None:
        with self._lock:
            self.index.publish(_changes.plan_import(self.index, candidate).candidate)

    # -- LLM response cache -------------------------------------------------------------
    def cache_get(self, key: str) -> Mapping[str, Any] | None:
        with self._lock:
            entry = self._cache.get(key)
        return None if entry is None else json.loads(entry[1])

    def cache_items(self) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
        with self._lock:
            entries = list(self._cache.items())
        for key, (request, response, _) in entries:
            yield key, json.loads(request), json.loads(response)

    def cache_size(self) -> int:
        with self._lock:
            return len(self._cache)
