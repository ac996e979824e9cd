"""Build benchmarks by kind name from plain options (as read from a run config)."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from ._benchmark import Benchmark
from ._errors import BenchmarkError
from ._jsonl import JsonlBenchmark
from ._procedural import (
    ArithmeticBenchmark,
    BooleanExpressionsBenchmark,
    WordSortingBenchmark,
)
from ._reasoning_gym import ReasoningGymBenchmark

_CLASSES: Mapping[str, type[Benchmark]] = MappingProxyType(
    {
        "arithmetic": ArithmeticBenchmark,
        "word_sorting": WordSortingBenchmark,
        "boolean_expressions": BooleanExpressionsBenchmark,
        "jsonl": JsonlBenchmark,
        "reasoning_gym": ReasoningGymBenchmark,
    }
)

#: the benchmark kinds ``make_benchmark`` knows
BENCHMARK_KINDS: tuple[str, ...] = tuple(_CLASSES)


class _Required:
    """Marks an option without a default (it must be given)."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of an option that must be given
REQUIRED: Any = _Required()


class BenchmarkOption(NamedTuple):
    """One constructor option of a benchmark kind: its default and a one-line doc."""

    default: Any
    doc: str


def _benchmark_class(kind: str) -> type[Benchmark]:
    try:
        return _CLASSES[kind]
    except (KeyError, TypeError):
        raise BenchmarkError(
            f"unknown benchmark kind {kind!r}; expected one of {', '.join(BENCHMARK_KINDS)}"
        ) from None


def benchmark_options(kind: str) -> dict[str, BenchmarkOption]:
    """The options of a benchmark kind, in constructor order: ``name -> (default, doc)``.

    Options without a default have the default ``REQUIRED``.
    """
    return class_options(_benchmark_class(kind))


def make_benchmark(kind: str, /, **options: Any) -> Benchmark:
    """A benchmark of ``kind`` built from ``options`` (checked against its constructor).

    Unknown kinds, unknown or missing options and options of the wrong type
    raise ``BenchmarkError`` naming what is allowed.
    """
    return construct(_benchmark_class(kind), f"benchmark kind {kind!r}", options)


def class_options(cls: type) -> dict[str, BenchmarkOption]:
    """A class's constructor options, documented by its ``OPTION_DOCS`` mapping."""
    docs: Mapping[str, str] = getattr(cls, "OPTION_DOCS", {})
    options = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        default = REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
        options[name] = BenchmarkOption(default, docs.get(name, ""))
    return options


def construct(cls: type, what: str, options: Mapping[str, Any]) -> Any:
    """``cls(**options)`` after checking the options against its constructor; ``what``
    names the kind in errors (e.g. "benchmark kind 'jsonl'")."""
    allowed = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BenchmarkError(
            f"unknown option(s) {', '.join(unknown)} for {what}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    missing = [
        name
        for name, parameter in allowed.items()
        if parameter.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise BenchmarkError(f"{what} needs option(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls.__init__)
    for name, value in options.items():
        expected = hints.get(name)
        if expected is not None and not _matches(value, expected):
            raise BenchmarkError(
                f"option {name!r} of {what} must be {_describe(expected)}, got {value!r}"
            )
    return cls(**options)


def _matches(value: Any, expected: Any) -> bool:
    """Whether a plain config value fits a (simple) constructor annotation."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(expected))
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is Any:
        return True
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is Path:
        return isinstance(value, Path)
    check = origin if origin is not None else expected
    if check is Mapping or check is dict:
        return isinstance(value, Mapping)
    return isinstance(check, type) and isinstance(value, check)


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(expected))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return "null"
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(expected, "__name__", str(expected))
