"""The archive: candidates, lineage edges, scores, run metadata and the LLM cache.

``SQLiteStorage`` is the durable source of truth of a run; ``InMemoryStorage``
behaves the same without a file. Both keep an ``ArchiveIndex`` current for
fast reads, and ``LineageGraph`` answers lineage questions and exports.
Every storage must pass the conformance suite in ``tests/archive/conformance.py``.
"""

from ._copy import copy_archive
from ._errors import (
    ArchiveError,
    DuplicateSlotError,
    InvalidTransitionError,
    UnknownCandidateError,
)
from ._graph import LineageGraph
from ._index import ArchiveIndex
from ._memory import InMemoryStorage
from ._reader import GRAPH_COLUMNS, ArchiveReader
from ._records import (
    FINAL_STATUSES,
    AddScores,
    CacheEntry,
    Candidate,
    Change,
    ExampleScore,
    Failure,
    Finish,
    NewCandidate,
    SplitScore,
    Status,
    Usage,
)
from ._sqlite import SCHEMA_VERSION, SQLiteStorage
from ._storage import ArchiveStorage

__all__ = [
    "FINAL_STATUSES",
    "GRAPH_COLUMNS",
    "SCHEMA_VERSION",
    "AddScores",
    "ArchiveError",
    "ArchiveIndex",
    "ArchiveReader",
    "ArchiveStorage",
    "CacheEntry",
    "Candidate",
    "Change",
    "DuplicateSlotError",
    "ExampleScore",
    "Failure",
    "Finish",
    "InMemoryStorage",
    "InvalidTransitionError",
    "LineageGraph",
    "NewCandidate",
    "SQLiteStorage",
    "SplitScore",
    "Status",
    "Usage",
    "UnknownCandidateError",
    "copy_archive",
]
