"""Build the live strategies of a run from its (pure data) config.

Strategy options in the config are plain mappings; here they are checked
against each strategy's documented options, so that a misspelt key is
reported with its dotted path just like any other config error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from archive import SQLiteStorage, Usage
from fitness import (
    Benchmark,
    BenchmarkError,
    PromptEvaluator,
    benchmark_options,
    code_benchmark_options,
    make_benchmark,
    make_code_benchmark,
)

from ._budget import Budget
from ._config import EvolutionConfig, FitnessConfig, RunConfig
from ._endpoints import Clients, sampling
from ._errors import ConfigError
from ._loop import Loop, Progress
from ._species import Lexicon, PromptSpecies, Species
from ._steps import Engine
from ._streams import DEFAULT_SCHEME, Streams
from ._writer import ArchiveWriter
from .operators import (
    CODE_OPERATORS,
    OPERATORS,
    code_operator_options,
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
    operator_options,
)
from .selection import SELECTORS, Selector, selector_options


def build_benchmark(config: FitnessConfig, genome: str = "prompt") -> Any:
    """The run's benchmark: a prompt ``Benchmark`` or, for code runs, a ``CodeBenchmark``."""
    options_of, make = ((code_benchmark_options, make_code_benchmark) if genome == "code"
                        else (benchmark_options, make_benchmark))
    try:
        allowed = options_of(config.benchmark)
    except BenchmarkError as exc:
        raise ConfigError(f"fitness.benchmark: {exc} (evolution.genome is {genome!r})") from None
    _check_keys("fitness.options", config.options, allowed)
    try:
        benchmark = make(config.benchmark, **config.options)
        for split in ("train", "validation"):  # load the data now: fail before the run starts
            if not benchmark.split(split):
                raise BenchmarkError(f"the {split} split is empty")
    except (BenchmarkError, TypeError, ValueError) as exc:
        raise ConfigError(f"fitness.options: {exc}") from None
    return benchmark


def build_selector(config: EvolutionConfig) -> Selector:
    name = config.selector_name()
    return _construct("evolution.selector_options", SELECTORS[name],
                      config.selector_options, selector_options(name))


def build_operators(config: EvolutionConfig) -> tuple[dict[str, Any], np.ndarray]:
    """The enabled operators (weight > 0) of the genome kind and their draw probabilities."""
    registry, options_of = ((CODE_OPERATORS, code_operator_options) if config.genome == "code"
                            else (OPERATORS, operator_options))
    weights_given = config.operator_weights()
    unknown = sorted(set(weights_given) - set(registry))
    unknown += sorted(set(config.operator_options) - set(registry))
    if unknown:
        raise ConfigError(
            f"evolution.operators.{unknown[0]}: unknown {config.genome} operator; choose "
            "from: " + ", ".join(registry))
    operators: dict[str, Any] = {}
    weights = []
    for name, weight in weights_given.items():
        if weight <= 0:
            continue
        options = config.operator_options.get(name, {})
        operators[name] = _construct(f"evolution.operator_options.{name}", registry[name],
                                     options, options_of(name))
        weights.append(weight)
    probabilities = np.asarray(weights, dtype=float)
    return operators, probabilities / probabilities.sum()


def generation_size(config: EvolutionConfig) -> int:
    if config.generation_size is not None:
        return config.generation_size
    if config.selector_name() == "tournament":
        return max(1, config.population_size // 2)
    return config.population_size


def load_lexicon() -> Lexicon:
    """The prompt operators' seed lists (evolve/data/*.txt)."""
    return Lexicon(thinking_styles=default_thinking_styles(),
                   mutation_prompts=default_mutation_prompts(),
                   hyper_mutation_prompts=default_hyper_mutation_prompts())


def build_prompt_species(config: RunConfig, storage: SQLiteStorage, clients: Clients,
                         benchmark: Benchmark) -> PromptSpecies:
    _, task_tokens = sampling(config.llm.task, "task")
    _, mutator_tokens = sampling(config.llm.mutator, "mutator")
    return PromptSpecies(
        benchmark, PromptEvaluator(benchmark, clients.task, max_tokens=task_tokens),
        clients.mutator, storage.index, load_lexicon(),
        seed_prompt=config.evolution.seed_prompt, task_prompts=config.evolution.task_prompts,
        mutator_max_tokens=mutator_tokens)


def build_loop(config: RunConfig, writer: ArchiveWriter, clients: Clients,
               species: Species, budget: Budget, progress: Progress,
               usage_before: Mapping[str, Usage] | None = None) -> Loop:
    """The engine and loop of one execution, wired from the config and the live parts
    (``writer``: the group committer of the run's archive, also the clients' cache)."""
    operators, weights = build_operators(config.evolution)
    engine = Engine(
        storage=writer.storage, writer=writer, species=species, mutator=clients.mutator,
        task=clients.task,
        selector=build_selector(config.evolution), operators=operators, weights=weights,
        streams=run_streams(config, writer.storage), batch_size=config.fitness.batch_size,
        validation_size=config.fitness.validation_size, usage_before=usage_before or {},
        stages=config.fitness.stages)
    evo = config.evolution
    return Loop(engine, budget, population_size=evo.population_size,
                generation_size=generation_size(evo), validate_top=config.fitness.validate_top,
                concurrency=evo.concurrency, progress=progress)


def run_streams(config: RunConfig, storage: SQLiteStorage) -> Streams:
    """The run's random streams, with the derivation scheme its archive records (runs
    created before the faster scheme keep the old one; an archive without the record,
    e.g. a benchmark's, gets the default)."""
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
