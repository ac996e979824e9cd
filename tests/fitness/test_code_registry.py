"""Code benchmarks built by kind name from plain config options."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitness import REQUIRED, BenchmarkError
from fitness.code import (
    CODE_BENCHMARK_KINDS,
    BinPackingBenchmark,
    CirclePackingBenchmark,
    CodeBenchmark,
    DirectoryBenchmark,
    code_benchmark_options,
    make_code_benchmark,
)

EXAMPLE = Path(__file__).parent / "data" / "user_benchmark"


def test_the_kinds() -> None:
    assert {"circle_packing", "bin_packing", "directory"} <= set(CODE_BENCHMARK_KINDS)


@pytest.mark.parametrize("kind", CODE_BENCHMARK_KINDS)
def test_every_option_is_documented(kind: str) -> None:
    options = code_benchmark_options(kind)
    assert options
    for name, (default, doc) in options.items():
        assert doc, f"option {name!r} of {kind!r} has no doc"
        assert default is REQUIRED or default is None or isinstance(
            default, int | float | str | bool)


def test_defaults_and_required_options() -> None:
    assert code_benchmark_options("circle_packing")["n"].default == 26
    assert code_benchmark_options("circle_packing")["wall_seconds"].default == 60.0
    assert code_benchmark_options("bin_packing")["capacity"].default == 150
    assert code_benchmark_options("directory")["path"].default is REQUIRED


def test_each_kind_is_built_from_plain_options() -> None:
    circles = make_code_benchmark("circle_packing", wall_seconds=10)
    assert isinstance(circles, CirclePackingBenchmark) and circles.limits.wall_seconds == 10
    bins = make_code_benchmark("bin_packing", seed=3, train_size=2)
    assert isinstance(bins, BinPackingBenchmark) and len(bins.split("train")) == 2
    user = make_code_benchmark("directory", path=str(EXAMPLE))
    assert isinstance(user, DirectoryBenchmark) and user.name == "sort_list"
    assert all(isinstance(b, CodeBenchmark) for b in (circles, bins, user))


def test_mistakes_are_named() -> None:
    with pytest.raises(BenchmarkError, match="unknown code benchmark kind 'circles'; "
                                             "expected one of circle_packing"):
        make_code_benchmark("circles")
    with pytest.raises(BenchmarkError, match="unknown code benchmark kind"):
        code_benchmark_options("nope")
    with pytest.raises(BenchmarkError, match=r"unknown option\(s\) radius .*allowed: n, "):
        make_code_benchmark("circle_packing", radius=1)
    with pytest.raises(BenchmarkError, match=r"'directory' needs option\(s\) path"):
        make_code_benchmark("directory")
    with pytest.raises(BenchmarkError, match="option 'items' .* must be int, got 10.5"):
        make_code_benchmark("bin_packing", items=10.5)
    with pytest.raises(BenchmarkError, match="option 'path' .* must be str or Path, got 3"):
        make_code_benchmark("directory", path=3)
    # the benchmark's own checks come through as well
    with pytest.raises(BenchmarkError, match="needs the option 'reference'"):
        make_code_benchmark("circle_packing", n=5)
