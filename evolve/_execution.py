"""One execution of a run: the clients, the species and the loop, wired from the config.

``open_loop`` is what ``Run.execute`` runs inside, and the public hook for tools
that drive the loop themselves (benchmarks, notebooks): it opens the model
clients of the roles the run uses (``GenomeKind.roles``) and the genome kind's
species, builds the engine and loop, and on exit commits what the archive
writer still holds and records the LLM usage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from archive import SQLiteStorage, Usage

from ._budget import Budget
from ._clients import open_clients
from ._config import RunConfig
from ._factory import build_benchmark, build_loop
from ._genome_kinds import genome_kind
from ._loop import Loop, Progress
from ._writer import ArchiveWriter


@asynccontextmanager
async def open_loop(config: RunConfig, storage: SQLiteStorage, directory: Path,
                    budget: Budget, *, progress: Progress | None = None,
                    benchmark: Any = None) -> AsyncIterator[Loop]:
    """The loop of one execution of the run whose archive is ``storage`` and whose files
    live in ``directory``; ``benchmark`` replaces the config's (e.g. a synthetic one).

    The loop's engine writes through an ``ArchiveWriter`` (``loop.engine.writer``); the
    usage counted before this execution is read from the archive and carried on.
    """
    kind = genome_kind(config.evolution.genome)
    if benchmark is None:
        benchmark = build_benchmark(config.fitness, kind)
    usage_before: Mapping[str, Usage] = {
        k: Usage.from_dict(v) for k, v in (storage.get_meta("llm_usage") or {}).items()}
    writer = ArchiveWriter(storage)
    measure = config.diversity.novelty_measure if config.diversity.novelty_threshold else None
    embeddings = ("mutator",) if measure == "embedding" else ()
    async with open_clients(config.llm, writer, kind.roles(benchmark), embeddings) as clients, \
            kind.open_species(config, storage, clients, benchmark, directory) as species:
        loop = build_loop(config, kind, writer, clients, species, budget,
                          progress or (lambda _e, _b: None), usage_before)
        try:
            yield loop
        finally:
            try:
                writer.close()  # the LLM responses still queued
            finally:
                storage.set_meta(loop.engine.usage_meta())
