"""What the engine knows of a genome kind: one ``GenomeKind`` object per wing.

The engine, the loop, the selectors and the archive are the same for every
genome; what differs is gathered in one object: the operators and their
default weights, the benchmarks, the model roles a run calls, the default
selector, the prerequisites to check before a run starts, how the species of
one execution is opened (and closed), what a fork copies besides the archive,
and what ``evolve show`` and ``evolve checkout`` add for a candidate. The kinds are registered in
``_genome_kinds.py``; see docs/genomes.md for adding one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
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
    ``Candidate.kind``; ``noun`` names a candidate in messages ("prompt", "program").

    A subclass sets every attribute below (checked when it is defined) and writes
    ``roles`` and ``open_species``; the other methods have defaults that do nothing.
    """

    name: str
    noun: str
    summary: str  # one line for the docs
    default_selector: str
    default_operator_weights: Mapping[str, float]
    #: config name -> operator class, and ``{option: (default, doc)}`` of one operator
    operators: Mapping[str, type]
    operator_options: Callable[[str], Mapping[str, tuple[Any, str]]]
    #: the benchmark kinds (``fitness.benchmark``) of this genome, the options of one
    #: (``BenchmarkError`` if unknown) and how to build one from its options
    benchmark_kinds: tuple[str, ...]
    benchmark_options: Callable[[str], Mapping[str, tuple[Any, str]]]
    make_benchmark: Callable[..., Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [a for a in GenomeKind.__annotations__ if not hasattr(cls, a)]
        if missing:
            raise TypeError(f"genome kind {cls.__name__} does not set: {', '.join(missing)}")

    @abstractmethod
    def roles(self, benchmark: Any) -> frozenset[str]:
        """The model roles (``"mutator"``, ``"task"``) a run of this kind on ``benchmark``
        calls: only their servers are started and their settings checked before a run, and
        asking for another role's client raises ``RoleNotOpened``."""

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
