"""Build code benchmarks by kind name from plain options (as read from a run config).

Each kind maps to a ``CodeBenchmark`` class; its options are the keywords of
the class's constructor, documented by the class's ``OPTION_DOCS`` mapping
(as for prompt benchmarks in ``_registry.py``). A new kind is one more line
in ``_CLASSES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import BenchmarkError
from .._registry import BenchmarkOption, class_options, construct
from ._benchmark import CodeBenchmark
from ._bin_packing import BinPackingBenchmark
from ._circle_packing import CirclePackingBenchmark
from ._humaneval import HumanEvalAgentBenchmark
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
    return class_options(_code_benchmark_class(kind))


def make_code_benchmark(kind: str, /, **options: Any) -> CodeBenchmark:
    """A code benchmark of ``kind`` built from ``options`` (checked against its constructor).

    Unknown kinds, unknown or missing options and options of the wrong type
    raise ``BenchmarkError`` naming what is allowed.
    """
    return construct(_code_benchmark_class(kind), f"code benchmark kind {kind!r}", options)
