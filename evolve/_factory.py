"""Build the live strategies of a run from its (pure data) config.

Strategy options in the config are plain mappings; here they are checked
against each strategy's documented options, so that a misspelt key is
reported with its dotted path just like any other config error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import numpy as np

from archive import SQLiteStorage, Usage
from fitness import Benchmark, BenchmarkError, PromptEvaluator, benchmark_options, make_benchmark

from ._budget import Budget
from ._config import EvolutionConfig, FitnessConfig, RunConfig
from ._endpoints import Clients, sampling
from ._errors import ConfigError
from ._loop import Loop, Progress
from ._steps import Engine, Lexicon
from .operators import OPERATORS, Operator, operator_options
from .selection import SELECTORS, Selector, selector_options


def build_benchmark(config: FitnessConfig) -> Benchmark:
    try:
        allowed = benchmark_options(config.benchmark)
    except BenchmarkError as exc:
        raise ConfigError(f"fitness.benchmark: {exc}") from None
    _check_keys("fitness.options", config.options, allowed)
    try:
        benchmark = make_benchmark(config.benchmark, **config.options)
        for split in ("train", "validation"):  # load the data now: fail before the run starts
            if not benchmark.split(split):
                raise BenchmarkError(f"the {split} split is empty")
    except (BenchmarkError, TypeError, ValueError) as exc:
        raise ConfigError(f"fitness.options: {exc}") from None
    return benchmark


def build_selector(config: EvolutionConfig) -> Selector:
    return _construct("evolution.selector_options", SELECTORS[config.selector],
                      config.selector_options, selector_options(config.selector))


def build_operators(config: EvolutionConfig) -> tuple[dict[str, Operator], np.ndarray]:
    """The enabled operators (weight > 0) and their draw probabilities."""
    unknown = sorted(set(config.operators) - set(OPERATORS))
    unknown += sorted(set(config.operator_options) - set(OPERATORS))
    if unknown:
        raise ConfigError(
            f"evolution.operators.{unknown[0]}: unknown operator; choose from: "
            + ", ".join(OPERATORS))
    operators: dict[str, Operator] = {}
    weights = []
    for name, weight in config.operators.items():
        if weight <= 0:
            continue
        options = config.operator_options.get(name, {})
        operators[name] = _construct(f"evolution.operator_options.{name}", OPERATORS[name],
                                     options, operator_options(name))
        weights.append(weight)
    probabilities = np.asarray(weights, dtype=float)
    return operators, probabilities / probabilities.sum()


def generation_size(config: EvolutionConfig) -> int:
    if config.generation_size is not None:
        return config.generation_size
    if config.selector == "tournament":
        return max(1, config.population_size // 2)
    return config.population_size


def load_lexicon() -> Lexicon:
    """The seed lists shipped with Cladeforge (evolve/data/*.txt)."""

    def lines(name: str) -> tuple[str, ...]:
        text = resources.files("evolve").joinpath("data", name).read_text(encoding="utf-8")
        return tuple(line.strip() for line in text.splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))

    return Lexicon(
        thinking_styles=lines("thinking_styles.txt"),
        mutation_prompts=lines("mutation_prompts.txt"),
        hyper_mutation_prompts=lines("hyper_mutation_prompts.txt"),
    )


def build_loop(config: RunConfig, storage: SQLiteStorage, clients: Clients,
               benchmark: Benchmark, budget: Budget, progress: Progress,
               usage_before: Mapping[str, Usage] | None = None) -> Loop:
    """The engine and loop of one execution, wired from the config and the live parts."""
    operators, weights = build_operators(config.evolution)
    _, task_tokens = sampling(config.llm.task, "task")
    _, mutator_tokens = sampling(config.llm.mutator, "mutator")
    engine = Engine(
        storage=storage, benchmark=benchmark,
        evaluator=PromptEvaluator(benchmark, clients.task, max_tokens=task_tokens),
        mutator=clients.mutator, task=clients.task, selector=build_selector(config.evolution),
        operators=operators, weights=weights, lexicon=load_lexicon(), seed=config.seed,
        batch_size=config.fitness.batch_size, validation_size=config.fitness.validation_size,
        mutator_max_tokens=mutator_tokens, usage_before=usage_before or {})
    evo = config.evolution
    return Loop(engine, budget, population_size=evo.population_size,
                generation_size=generation_size(evo), seed_prompt=evo.seed_prompt,
                task_prompts=evo.task_prompts, validate_top=config.fitness.validate_top,
                concurrency=evo.concurrency, progress=progress)


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
