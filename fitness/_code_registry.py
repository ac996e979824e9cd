"""Build code benchmarks by kind name from plain options (as read from a run config).

Each kind maps to a ``CodeBenchmark`` class; its options are the keywords of
the class's constructor, documented by the class's ``OPTION_DOCS`` mapping
(as for prompt benchmarks in ``_registry.py``). A new kind is one more line
in ``_CLASSES``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._bin_packing import BinPackingBenchmark
from ._circle_packing import CirclePackingBenchmark
from ._code_benchmark import CodeBenchmark
from ._errors import BenchmarkError
from ._humaneval import HumanEvalAgentBenchmark
from ._registry import REQUIRED, BenchmarkOption, _describe, _matches
from ._user_benchmark import DirectoryBenchmark

_CLASSES: Mapping[str, type[CodeBenchmark]] = MappingProxyType(
    {
        "circle_packing": CirclePackingBenchmark,
        "bin_packing": BinPackingBenchmark,
        "directory": DirectoryBenchmark,
        "humaneval_agent": HumanEvalAgentBenchmark,
    }
)

#: the code benchmark kinds ``make_code_benchmark`` knows
CODE_BENCHMARK_KINDS: tuple[str, ...] = tuple(_CLASSES)


def _code_benchmark_class(kind: str) -> type[CodeBenchmark]:
    try:
        return _CLASSES[kind]
    except (KeyError, TypeError):
        raise BenchmarkError(
            f"unknown code benchmark kind {kind!r}; expected one of "
            f"{', '.join(CODE_BENCHMARK_KINDS)}"
        ) from None


def code_benchmark_options(kind: str) -> dict[str, BenchmarkOption]:
    """The options of a code benchmark kind, in constructor order: ``name -> (default, doc)``.

    Options without a default have the default ``REQUIRED``.
    """
    cls = _code_benchmark_class(kind)
    docs: Mapping[str, str] = getattr(cls, "OPTION_DOCS", {})
    options = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        default = REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
        options[name] = BenchmarkOption(default, docs.get(name, ""))
    return options


def make_code_benchmark(kind: str, /, **options: Any) -> CodeBenchmark:
    """A code benchmark of ``kind`` built from ``options`` (checked against its constructor).

    Unknown kinds, unknown or missing options and options of the wrong type
    raise ``BenchmarkError`` naming what is allowed.
    """
    cls = _code_benchmark_class(kind)
    allowed = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BenchmarkError(
            f"unknown option(s) {', '.join(unknown)} for code benchmark kind {kind!r}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    missing = [
        name
        for name, parameter in allowed.items()
        if parameter.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise BenchmarkError(f"code benchmark kind {kind!r} needs option(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls.__init__)
    for name, value in options.items():
        expected = hints.get(name)
        if expected is not None and not _matches(value, expected):
            raise BenchmarkError(
                f"option {name!r} of code benchmark kind {kind!r} must be "
                f"{_describe(expected)}, got {value!r}"
            )
    return cls(**options)
