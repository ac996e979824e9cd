"""Build the live strategies of a run from its (pure data) config and its genome kind.

Strategy options in the config are plain mappings; here they are checked
against each strategy's documented options, so that a misspelt key is
reported with its dotted path just like any other config error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from archive import SQLiteStorage, Usage
from fitness import BenchmarkError

from ._budget import Budget
from ._clients import Clients
from ._config import DiversityConfig, EvolutionConfig, FitnessConfig, RunConfig
from ._engine import Engine
from ._errors import ConfigError
from ._genome_kind import GenomeKind
from ._loop import Loop, Progress
from ._monitor import CollapseMonitor
from ._novelty import ArchiveNovelty, EmbeddingNoveltyFilter, NoveltyFilter
from ._species import Species
from ._streams import DEFAULT_SCHEME, Streams
from ._writer import ArchiveWriter
from .selection import SELECTORS, Selector, selector_options


def build_benchmark(config: FitnessConfig, kind: GenomeKind) -> Any:
    """The run's benchmark, of one of the genome kind's benchmark kinds, with its data loaded."""
    try:
        allowed = kind.benchmark_options(config.benchmark)
    except BenchmarkError as exc:
        raise ConfigError(f"fitness.benchmark: {exc} (evolution.genome is {kind.name!r})"
                          ) from None
    _check_keys("fitness.options", config.options, allowed)
    try:
        benchmark = kind.make_benchmark(config.benchmark, **config.options)
        for split in ("train", "validation"):  # load the data now: fail before the run starts
            if not benchmark.split(split):
                raise BenchmarkError(f"the {split} split is empty")
    except (BenchmarkError, TypeError, ValueError) as exc:
        raise ConfigError(f"fitness.options: {exc}") from None
    return benchmark


def selector_name(config: EvolutionConfig, kind: GenomeKind) -> str:
    """The configured selector, or the genome kind's default."""
    return config.selector or kind.default_selector


def build_selector(config: EvolutionConfig, kind: GenomeKind) -> Selector:
    name = selector_name(config, kind)
    options = _with_growth(name, config.selector_options, config.population_size)
    return _construct("evolution.selector_options", SELECTORS[name], options,
                      selector_options(name))


def _with_growth(name: str, options: Mapping[str, Any], population_size: int
                 ) -> dict[str, Any]:
    """``options`` with the size a tournament grows its population to (``grow_to``:
    ``population_size``; inside islands, its share per island, at least two), unless the
    config sets it: a run that starts from one seed can then hold tournaments."""
    options = dict(options)
    if name == "tournament":
        options.setdefault("grow_to", population_size)
    elif name == "islands" and options.get("inner", "tournament") == "tournament":
        islands = options.get("islands", selector_options("islands")["islands"][0])
        inner = options.get("inner_options") or {}
        if isinstance(islands, int) and islands >= 1 and isinstance(inner, Mapping):
            share = max(2, -(-population_size // islands))  # a tournament needs two
            options["inner_options"] = {"grow_to": share, **inner}
    return options


def build_operators(config: EvolutionConfig, kind: GenomeKind
                    ) -> tuple[dict[str, Any], np.ndarray]:
    """The enabled operators (weight > 0) of the genome kind and their draw probabilities."""
    weights_given = (config.operators if config.operators is not None
                     else kind.default_operator_weights)
    unknown = sorted(set(weights_given) - set(kind.operators))
    unknown += sorted(set(config.operator_options) - set(kind.operators))
    if unknown:
        raise ConfigError(
            f"evolution.operators.{unknown[0]}: unknown {kind.name} operator; choose "
            "from: " + ", ".join(kind.operators))
    operators: dict[str, Any] = {}
    weights = []
    for name, weight in weights_given.items():
        if weight <= 0:
            continue
        options = config.operator_options.get(name, {})
        operators[name] = _construct(f"evolution.operator_options.{name}", kind.operators[name],
                                     options, kind.operator_options(name))
        weights.append(weight)
    probabilities = np.asarray(weights, dtype=float)
    return operators, probabilities / probabilities.sum()


def generation_size(config: EvolutionConfig, kind: GenomeKind) -> int:
    if config.generation_size is not None:
        return config.generation_size
    name = selector_name(config, kind)
    if name == "tournament" or (name == "islands"
                                and config.selector_options.get("inner", "tournament")
                                == "tournament"):
        return max(1, config.population_size // 2)  # two members per tournament
    return config.population_size


def novelty_filter(config: DiversityConfig, storage: SQLiteStorage, species: Species,
                   clients: Clients) -> ArchiveNovelty | None:
    """The configured novelty rejection (None: off)."""
    if config.novelty_threshold is None:
        return None
    if config.novelty_measure == "embedding":
        async def embed(text: str) -> tuple[float, ...]:
            return (await clients.mutator.embed(text)).vector
        return EmbeddingNoveltyFilter(config.novelty_threshold, storage.index,
                                      species.genome_text, embed)
    return NoveltyFilter(config.novelty_threshold, storage.index, species.genome_text)


def build_loop(config: RunConfig, kind: GenomeKind, writer: ArchiveWriter, clients: Clients,
               species: Species, budget: Budget, progress: Progress,
               usage_before: Mapping[str, Usage] | None = None) -> Loop:
    """The engine and loop of one execution, wired from the config and the live parts
    (``writer``: the group committer of the run's archive, also the clients' cache)."""
    operators, weights = build_operators(config.evolution, kind)
    engine = Engine(
        storage=writer.storage, writer=writer, species=species, mutator=clients.mutator,
        task=clients.opened("task"),
        selector=build_selector(config.evolution, kind), operators=operators, weights=weights,
        streams=run_streams(config, writer.storage), batch_size=config.fitness.batch_size,
        validation_size=config.fitness.validation_size, usage_before=usage_before or {},
        stages=config.fitness.stages)
    writer.storage.index.rank_train_by(config.fitness.rank_by)
    engine.novelty = novelty_filter(config.diversity, writer.storage, species, clients)
    evo = config.evolution
    return Loop(engine, budget, population_size=evo.population_size,
                generation_size=generation_size(evo, kind),
                validate_top=config.fitness.validate_top, concurrency=evo.concurrency,
                progress=progress, monitor=CollapseMonitor(engine, config.diversity),
                monitor_every=config.diversity.every, rescore_top=config.fitness.rescore_top,
                rescore_size=config.fitness.rescore_size)


def run_streams(config: RunConfig, storage: SQLiteStorage) -> Streams:
    """The run's random streams, with the derivation scheme its archive records (a run
    keeps the scheme it was created with; an archive without the record, e.g. a
    benchmark's, gets the default)."""
    recorded = storage.get_meta("rng") or {}
    return Streams(config.seed, recorded.get("scheme", DEFAULT_SCHEME))


def _check_keys(path: str, given: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    for key in given:
        if key not in allowed:
            choices = ", ".join(sorted(allowed)) or "(none)"
            raise ConfigError(f"{path}.{key}: unknown option; allowed here: {choices}")


def _construct(path: str, factory: Callable[..., Any], options: Mapping[str, Any],
               allowed: Mapping[str, Any]) -> Any:
    _check_keys(path, options, allowed)
    try:
        return factory(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
