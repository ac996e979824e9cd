"""What the engine knows of a genome kind: one ``GenomeKind`` object per wing.

The engine, the loop, the selectors and the archive are the same for every
genome; what differs is gathered in one object: the operators and their
default weights, the benchmarks, the default selector, the prerequisites to
check before a run starts, how the species of one execution is opened (and
closed), what a fork copies besides the archive, and what ``evolve show`` and
``evolve checkout`` add for a candidate. The kinds are registered in
``_genome_kinds.py``; see docs/genomes.md for adding one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from archive import Candidate, SQLiteStorage

from ._clients import Clients
from ._config import RunConfig
from ._errors import CladeforgeError
from ._species import Species


class GenomeKind(ABC):
    """One genome kind. ``name`` is the config's ``evolution.genome`` and the archive's
    ``Candidate.kind``; ``noun`` names a candidate in messages ("prompt", "program")."""

    name: str
    noun: str
    summary: str  # one line for the docs
    default_selector: str
    default_operator_weights: Mapping[str, float]
    operators: Mapping[str, type]

    @abstractmethod
    def operator_options(self, name: str) -> Mapping[str, tuple[Any, str]]:
        """``{option: (default, doc)}`` of the operator called ``name``."""

    @property
    @abstractmethod
    def benchmark_kinds(self) -> tuple[str, ...]:
        """The benchmark kinds (``fitness.benchmark``) a run of this genome can use."""

    @abstractmethod
    def benchmark_options(self, name: str) -> Mapping[str, tuple[Any, str]]:
        """``{option: (default, doc)}`` of benchmark kind ``name``; ``BenchmarkError`` if
        unknown."""

    @abstractmethod
    def make_benchmark(self, name: str, /, **options: Any) -> Any:
        """The benchmark of kind ``name`` built from ``options``."""

    def check(self, config: RunConfig) -> None:  # noqa: B027 - most kinds need nothing
        """Raise ``ConfigError`` now if what a run of ``config`` needs cannot work here."""

    @abstractmethod
    def open_species(self, config: RunConfig, storage: SQLiteStorage, clients: Clients,
                     benchmark: Any, directory: Path) -> AbstractAsyncContextManager[Species]:
        """The species of one execution of the run in ``directory`` (closed on exit)."""

    def copy_run_files(self, source: Path, target: Path) -> None:  # noqa: B027
        """A fork: copy what the run in ``source`` keeps outside its archive to ``target``."""

    def show(self, candidate: Candidate, parents: Mapping[int, Candidate],
             directory: Path) -> dict[str, Any]:
        """What ``evolve show`` adds to the archive's record of ``candidate``."""
        return {}

    def checkout(self, candidate: Candidate, directory: Path, target: Path) -> list[str]:
        """Write ``candidate``'s files to ``target``; the paths written."""
        raise CladeforgeError(
            f"candidate #{candidate.id} is a {self.name} candidate; only candidates made of "
            f"files can be checked out (see 'evolve show {directory} {candidate.id}')")
