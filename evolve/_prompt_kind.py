"""The prompt genome kind: task-prompts evolved Promptbreeder's way, scored by the task model.

Its parts are the core's own: ``PromptGenome`` (``_genome.py``), ``PromptSpecies``
(``_species.py``), the operators of ``evolve.operators`` and the prompt
benchmarks of ``fitness``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType

from archive import SQLiteStorage
from fitness import (
    BENCHMARK_KINDS,
    Benchmark,
    PromptEvaluator,
    benchmark_options,
    make_benchmark,
)

from ._clients import ROLES, Clients, context_window, sampling
from ._config import RunConfig
from ._genome import PROMPT_KIND
from ._genome_kind import GenomeKind
from ._species import Lexicon, PromptSpecies
from .operators import (
    OPERATORS,
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
    operator_options,
)


def load_lexicon() -> Lexicon:
    """The prompt operators' seed lists (evolve/data/*.txt)."""
    return Lexicon(thinking_styles=default_thinking_styles(),
                   mutation_prompts=default_mutation_prompts(),
                   hyper_mutation_prompts=default_hyper_mutation_prompts())


class PromptKind(GenomeKind):
    name = PROMPT_KIND
    noun = "prompt"
    summary = "task-prompts (and their mutation prompts) scored by the task model, Promptbreeder"
    default_selector = "tournament"
    default_operator_weights: Mapping[str, float] = MappingProxyType({
        "zero_order_direct": 1.0,
        "first_order_direct": 3.0,
        "eda": 1.0,
        "eda_rank_index": 1.0,
        "lineage": 1.0,
        "zero_order_hyper": 1.0,
        "first_order_hyper": 1.0,
        "lamarckian": 1.0,
        "crossover": 0.5,
        "context_shuffle": 0.5,
    })
    operators = OPERATORS
    operator_options = staticmethod(operator_options)
    benchmark_kinds = BENCHMARK_KINDS
    benchmark_options = staticmethod(benchmark_options)
    make_benchmark = staticmethod(make_benchmark)

    def roles(self, benchmark: Benchmark) -> frozenset[str]:
        return frozenset(ROLES)  # the mutator writes prompts, the task model answers them

    @asynccontextmanager
    async def open_species(self, config: RunConfig, storage: SQLiteStorage, clients: Clients,
                           benchmark: Benchmark, directory: Path) -> AsyncIterator[PromptSpecies]:
        _, task_tokens = sampling(config.llm.task, "task")
        _, mutator_tokens = sampling(config.llm.mutator, "mutator")
        yield PromptSpecies(
            benchmark, PromptEvaluator(benchmark, clients.task, max_tokens=task_tokens),
            clients.mutator, storage.index, load_lexicon(),
            seed_prompt=config.evolution.seed_prompt,
            task_prompts=config.evolution.task_prompts, mutator_max_tokens=mutator_tokens,
            constrained_founders=config.evolution.initial_population_constrained,
            mutator_context=context_window(config.llm.mutator))


PROMPT = PromptKind()
