"""The genome kinds: one registry, each kind complete and self-consistent, and a new kind
plugs in with no change to the engine (its defaults and strategies are used by the run's
factory, and a kind that forgets part of its contract is refused when it is defined)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

import pytest

from evolve import GENOME_KINDS, ConfigError, GenomeKind
from evolve._config import config_from_data
from evolve._factory import build_benchmark, build_operators, generation_size, selector_name
from evolve._genome_kinds import genome_kind
from evolve.selection import SELECTORS
from fitness import BENCHMARK_KINDS, benchmark_options, make_benchmark

FIRST_BENCHMARK = {"prompt": "arithmetic", "code": "circle_packing"}


def test_the_registry_holds_the_prompt_and_code_kinds_by_their_names() -> None:
    assert list(GENOME_KINDS) == ["prompt", "code"]
    for name, kind in GENOME_KINDS.items():
        assert kind.name == name and genome_kind(name) is kind
        assert kind.noun and kind.summary
        assert kind.default_selector in SELECTORS
        assert set(kind.default_operator_weights) <= set(kind.operators)
        assert any(w > 0 for w in kind.default_operator_weights.values())
        for operator in kind.operators:
            assert isinstance(kind.operator_options(operator), dict)
        assert FIRST_BENCHMARK[name] in kind.benchmark_kinds


@pytest.mark.parametrize("name", list(GENOME_KINDS))
def test_each_kind_builds_its_own_benchmarks_and_refuses_the_others(name: str) -> None:
    kind = GENOME_KINDS[name]
    config = config_from_data({"evolution": {"genome": name},
                               "fitness": {"benchmark": FIRST_BENCHMARK[name]}})
    benchmark = build_benchmark(config.fitness, kind)
    assert benchmark.split("train")
    other = next(b for n, b in FIRST_BENCHMARK.items() if n != name)
    config = config_from_data({"evolution": {"genome": name}, "fitness": {"benchmark": other}})
    with pytest.raises(ConfigError, match=f"fitness.benchmark: .*evolution.genome is '{name}'"):
        build_benchmark(config.fitness, kind)


def test_an_unknown_kind_names_the_choices() -> None:
    with pytest.raises(ConfigError) as info:
        genome_kind("cod")
    assert str(info.value) == ("evolution.genome: unknown genome kind 'cod'; did you mean "
                               "'code'? (choose from: prompt, code)")


class ToyKind(GenomeKind):
    """A third kind as a newcomer would write it: prompts' benchmarks, two of the prompt
    operators by other weights, and the DGM selector."""

    name = "toy"
    noun = "toy"
    summary = "a kind made by a test"
    default_selector = "dgm"
    default_operator_weights = MappingProxyType({"lineage": 2.0, "crossover": 0.0})
    operators = GENOME_KINDS["prompt"].operators
    operator_options = staticmethod(GENOME_KINDS["prompt"].operator_options)
    benchmark_kinds = BENCHMARK_KINDS
    benchmark_options = staticmethod(benchmark_options)
    make_benchmark = staticmethod(make_benchmark)

    def roles(self, benchmark: Any) -> frozenset[str]:
        return frozenset({"mutator", "task"})

    @asynccontextmanager
    async def open_species(self, *args: Any) -> AsyncIterator[Any]:
        yield None


def test_a_new_kind_brings_its_defaults_to_the_run_factory() -> None:
    toy = ToyKind()
    config = config_from_data({"evolution": {"genome": "toy", "population_size": 6}})
    operators, weights = build_operators(config.evolution, toy)
    assert list(operators) == ["lineage"] and weights.tolist() == [1.0]  # weight 0: disabled
    assert selector_name(config.evolution, toy) == "dgm"
    assert generation_size(config.evolution, toy) == 6  # dgm: the whole population
    config = config_from_data({"evolution": {"genome": "toy", "operators": {"diff_edit": 1}}})
    with pytest.raises(ConfigError, match="evolution.operators.diff_edit: unknown toy operator"):
        build_operators(config.evolution, toy)


def test_a_kind_that_leaves_out_part_of_its_contract_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="does not set: .*benchmark_kinds.*make_benchmark"):
        class Half(GenomeKind):  # noqa: F841 - defining it is the test
            name, noun, summary, default_selector = "half", "half", "half", "dgm"
            default_operator_weights = operators = MappingProxyType({})
            operator_options = benchmark_options = staticmethod(lambda name: {})

            async def open_species(self, *args: Any) -> Any:
                return None
