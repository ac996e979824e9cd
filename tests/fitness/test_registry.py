"""make_benchmark: kinds, option checking against the constructors, option docs."""

from __future__ import annotations

import inspect

import pytest

import fitness
from fitness import (
    BENCHMARK_KINDS,
    REQUIRED,
    ArithmeticBenchmark,
    Benchmark,
    BenchmarkError,
    JsonlBenchmark,
    ReasoningGymBenchmark,
    benchmark_options,
    make_benchmark,
)


def test_kinds() -> None:
    assert BENCHMARK_KINDS == (
        "arithmetic",
        "word_sorting",
        "boolean_expressions",
        "jsonl",
        "reasoning_gym",
    )


def test_make_builtin_benchmarks() -> None:
    for kind in ("arithmetic", "word_sorting", "boolean_expressions"):
        bench = make_benchmark(kind, seed=4, train_size=3, validation_size=2, test_size=1)
        assert isinstance(bench, Benchmark)
        assert bench.name == kind
        assert len(bench.split("train")) == 3


def test_options_reach_the_constructor() -> None:
    bench = make_benchmark("arithmetic", num_operands=4, max_value=99, operators="+")
    assert isinstance(bench, ArithmeticBenchmark)
    assert (bench.num_operands, bench.max_value, bench.operators) == (4, 99, "+")
    assert "*" not in bench.split("test")[0].question


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(BenchmarkError, match="unknown benchmark kind 'gsm9k'") as info:
        make_benchmark("gsm9k")
    for kind in BENCHMARK_KINDS:
        assert kind in str(info.value)
    with pytest.raises(BenchmarkError, match="unknown benchmark kind"):
        benchmark_options("nope")


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(BenchmarkError, match="unknown option.* num_operand ") as info:
        make_benchmark("arithmetic", num_operand=3)
    assert "allowed: seed, train_size, validation_size, test_size, num_operands" in str(info.value)


def test_missing_required_option() -> None:
    with pytest.raises(BenchmarkError, match="'reasoning_gym' needs option.* task"):
        make_benchmark("reasoning_gym", seed=1)


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("arithmetic", {"seed": "1"}, "option 'seed' .* must be int, got '1'"),
        ("arithmetic", {"train_size": True}, "option 'train_size' .* must be int"),
        ("arithmetic", {"train_size": 2.0}, "option 'train_size' .* must be int"),
        ("word_sorting", {"distinct_initials": "yes"}, "must be bool"),
        ("boolean_expressions", {"not_probability": "0.5"}, "must be float"),
        ("jsonl", {"path": 3}, "option 'path' .* must be str or Path or null"),
        ("jsonl", {"path": "x", "kind": "fuzzy"}, "must be one of 'number', 'boolean'"),
        ("jsonl", {"path": "x", "test_size": "5"}, "must be int or null"),
        ("reasoning_gym", {"task": "leg_counting", "config": [1]}, "must be Mapping or null"),
    ],
)
def test_options_of_the_wrong_type(kind: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        make_benchmark(kind, **options)


def test_int_is_accepted_for_float_options() -> None:
    bench = make_benchmark("boolean_expressions", not_probability=1, num_terms=5, train_size=5)
    assert bench.split("test")[0].question.count("not") >= 1


def test_jsonl_and_reasoning_gym_build_without_touching_files_or_packages() -> None:
    assert isinstance(make_benchmark("jsonl", path="missing.jsonl"), JsonlBenchmark)
    rg = make_benchmark("reasoning_gym", task="leg_counting", config={"min_animals": 2})
    assert isinstance(rg, ReasoningGymBenchmark)
    assert rg.name == "reasoning_gym:leg_counting"


@pytest.mark.parametrize("kind", BENCHMARK_KINDS)
def test_every_option_has_a_default_or_is_required_and_has_a_doc(kind: str) -> None:
    options = benchmark_options(kind)
    cls = {
        "jsonl": JsonlBenchmark,
        "reasoning_gym": ReasoningGymBenchmark,
    }.get(kind) or type(make_benchmark(kind))
    assert list(options) == list(inspect.signature(cls).parameters)
    for name, (default, doc) in options.items():
        assert doc and "\n" not in doc, f"{kind}.{name} needs a one-line doc"
        parameter = inspect.signature(cls).parameters[name]
        if parameter.default is inspect.Parameter.empty:
            assert default is REQUIRED
        else:
            assert default == parameter.default


def test_benchmark_options_example() -> None:
    options = benchmark_options("arithmetic")
    assert options["num_operands"].default == 2
    assert "numbers" in options["num_operands"].doc
    assert benchmark_options("reasoning_gym")["task"].default is REQUIRED
    assert repr(REQUIRED) == "REQUIRED"


def test_public_api_is_exported() -> None:
    for name in fitness.__all__:
        assert hasattr(fitness, name), name
