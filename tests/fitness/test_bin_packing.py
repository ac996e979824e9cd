"""Online bin packing: the heuristic runs in a real sandbox, the assignment is re-checked outside.

End-to-end tests run on the process backend and on bubblewrap (skipped where
bubblewrap cannot run, failed in CI); the checks also have unit tests on
``check_assignment``.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from fitness import SPLITS, BenchmarkError
from fitness.code import BinPackingBenchmark, EvaluationEnv, ProgramEvaluation
from fitness.code._bin_packing import check_assignment, lower_bound
from sandboxes import EndReason, LocalExecutor, Sandbox

BEST_FIT = "return [-(b - item) for b in bins]"


def evaluate(benchmark: BinPackingBenchmark, sandbox: Sandbox, program: str,
             split: str = "train") -> ProgramEvaluation:
    env = EvaluationEnv(LocalExecutor(sandbox, max_workers=2))
    files = {"heuristic.py": program.encode()}
    return asyncio.run(benchmark.evaluate(files, benchmark.split(split), env))


def with_priority(body: str) -> str:
    """The seed program with the body of ``priority`` replaced."""
    seed = BinPackingBenchmark().seed_files()["heuristic.py"]
    assert BEST_FIT in seed
    return seed.replace(BEST_FIT, body)


def writes(assignment: str, *, extra: str = "") -> str:
    """A program that writes ``assignment`` (a Python expression over ``items``)."""
    return (f"import json\nitems = json.load(open('items.json'))['items']\n{extra}\n"
            f"json.dump({assignment}, open('assignments.json', 'w'))\n")


# An offline packer (first fit decreasing): not online, but a valid and better packing.
FIRST_FIT_DECREASING = writes("assignment", extra="""
capacity = json.load(open('items.json'))['capacity']
order = sorted(range(len(items)), key=lambda k: -items[k])
loads, assignment = [], [None] * len(items)
for k in order:
    b = next((b for b, load in enumerate(loads) if load + items[k] <= capacity), len(loads))
    if b == len(loads):
        loads.append(0)
    loads[b] += items[k]
    assignment[k] = b
""")


def test_the_seed_is_valid_on_every_split(sandbox: Sandbox) -> None:
    benchmark = BinPackingBenchmark()
    seed = benchmark.seed_files()["heuristic.py"]
    for split in SPLITS:
        evaluation = evaluate(benchmark, sandbox, seed, split)
        assert len(evaluation.results) == len(benchmark.split(split))
        for result, example in zip(evaluation.results, benchmark.split(split), strict=True):
            used, bound = map(int, re.fullmatch(
                r"(\d+) bins for 120 items \(lower bound (\d+)\)", result.detail).groups())
            assert bound == int(example.answer) and used >= bound
            assert result.score == pytest.approx(bound / used)
        assert 0.85 < evaluation.mean < 1.0


def test_better_heuristics_score_higher(sandbox: Sandbox) -> None:
    benchmark = BinPackingBenchmark()
    one_per_bin = evaluate(benchmark, sandbox, with_priority(
        "return [0.0] * (len(bins) - 1) + [1.0]")).mean
    first_fit = evaluate(benchmark, sandbox, with_priority(
        "return [-float(k) for k in range(len(bins))]")).mean
    best_fit = evaluate(benchmark, sandbox, benchmark.seed_files()["heuristic.py"]).mean
    offline = evaluate(benchmark, sandbox, FIRST_FIT_DECREASING).mean
    assert 0 < one_per_bin < first_fit < best_fit < offline <= 1


@pytest.mark.parametrize(("assignment", "detail"), [
    ("[0] * len(items)", "bin 0 holds"),
    ("list(range(len(items)))[:-1]", "119 bin indices for 120 items"),
    ("list(range(len(items))) + [0]", "121 bin indices for 120 items"),
    ("[None] + list(range(1, len(items)))", "item 0 has bin null, not a bin index"),
    ("list(range(len(items) - 1)) + [-1]", "item 119 has bin -1"),
    ("[True] + list(range(1, len(items)))", "item 0 has bin true"),
    ("{'0': 0}", "must hold a JSON list, got dict"),
])
def test_invalid_assignments_score_zero_with_the_reason(sandbox: Sandbox, assignment: str,
                                                        detail: str) -> None:
    benchmark = BinPackingBenchmark(train_size=1)
    (result,) = evaluate(benchmark, sandbox, writes(assignment)).results
    assert result.reason is EndReason.OK and result.score == 0.0
    assert result.detail.startswith("invalid: ") and detail in result.detail


def test_fake_scores_and_fake_instances_get_no_credit(sandbox: Sandbox) -> None:
    benchmark = BinPackingBenchmark(train_size=1)
    cheat = writes("[0] * len(items)", extra="""
print("score: 1")
print(json.dumps({"score": 1.0}))
open("score.json", "w").write(json.dumps({"score": 1.0}))
""")
    (result,) = evaluate(benchmark, sandbox, cheat).results
    assert result.score == 0.0 and "over the capacity" in result.detail
    # a candidate shipping its own easy items.json: the benchmark's instance replaces it
    example = benchmark.split("train")[0]
    job = benchmark.task.job({"heuristic.py": b"", "items.json": b'{"items": [1]}'}, example)
    assert json.loads(job.files["items.json"])["items"] == list(example.meta["items"])
    (silent,) = evaluate(benchmark, sandbox, 'print("score: 1")\n').results
    assert silent.score == 0.0 and "wrote no assignments.json" in silent.detail


def test_a_crash_and_a_timeout_score_zero_with_their_reason(sandbox: Sandbox) -> None:
    benchmark = BinPackingBenchmark(train_size=2, wall_seconds=1)
    crash = evaluate(benchmark, sandbox, with_priority("raise ValueError('no idea')"))
    assert [r.reason for r in crash.results] == [EndReason.EXIT] * 2 and crash.mean == 0.0
    assert "ValueError: no idea" in crash.results[0].detail
    wrong_length = evaluate(benchmark, sandbox, with_priority("return [1.0]"))
    assert wrong_length.results[0].reason is EndReason.EXIT
    assert "priority gave 1 scores" in wrong_length.results[0].detail
    slow = evaluate(benchmark, sandbox, with_priority("while True:\n        pass"))
    assert [r.reason for r in slow.results] == [EndReason.TIMEOUT] * 2 and slow.mean == 0.0


# ------------------------------------------------------------ the checks, on the host


def test_check_assignment_counts_bins_and_checks_capacity() -> None:
    items = [60, 50, 40, 100]
    assert check_assignment(items, 150, [0, 0, 0, 1]) == (2, "")
    assert check_assignment(items, 150, [3, 3, 7, 9]) == (3, "")  # indices need not be dense
    assert check_assignment(items, 150, [0, 0, 1, 1]) == (2, "")
    assert check_assignment(items, 100, [0, 0, 1, 2]) == (
        None, "bin 0 holds 110, over the capacity 100")
    assert check_assignment(items, 150, [0, 1, 1, 0]) == (
        None, "bin 0 holds 160, over the capacity 150")
    assert check_assignment(items, 150, [0, 0, 0, 1.0])[0] is None


def test_the_lower_bound_is_the_rounded_up_total() -> None:
    assert lower_bound([50, 50, 50], 150) == 1
    assert lower_bound([50, 50, 51], 150) == 2
    assert lower_bound([], 150) == 0


# ------------------------------------------------------------------- the benchmark


def test_instances_are_deterministic_distinct_and_in_range() -> None:
    benchmark = BinPackingBenchmark(items=50, min_size=10, max_size=60, capacity=100)
    again = BinPackingBenchmark(items=50, min_size=10, max_size=60, capacity=100)
    other = BinPackingBenchmark(seed=1, items=50, min_size=10, max_size=60, capacity=100)
    sizes = {"train": 3, "validation": 3, "test": 5}
    seen = set()
    for split in SPLITS:
        examples = benchmark.split(split)
        assert len(examples) == sizes[split]
        assert examples == again.split(split)
        for example, different in zip(examples, other.split(split), strict=True):
            items = example.meta["items"]
            assert len(items) == 50 and all(10 <= s <= 60 for s in items)
            assert example.meta["capacity"] == 100
            assert int(example.answer) == lower_bound(items, 100)
            assert items != different.meta["items"]
            seen.add(items)
    assert len(seen) == 11
    assert [e.id for e in benchmark.split("validation")] == [
        "binpack-validation-0", "binpack-validation-1", "binpack-validation-2"]


def test_the_seed_and_the_description() -> None:
    benchmark = BinPackingBenchmark()
    seed = benchmark.seed_files()["heuristic.py"]
    block = seed.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END\n")[0]
    assert "def priority(item, bins)" in block and "def main" not in block
    for needle in ("capacity 150", "items.json", "assignments.json", "priority(item, bins)",
                   "30 s", "ceil(sum of sizes / capacity)", "20..100"):
        assert needle in benchmark.description


def test_bad_options_are_refused() -> None:
    with pytest.raises(BenchmarkError, match="'max_size'.*must not exceed 'capacity'"):
        BinPackingBenchmark(max_size=200)
    with pytest.raises(BenchmarkError, match="'max_size' must be an integer >= 50"):
        BinPackingBenchmark(min_size=50, max_size=40)
    with pytest.raises(BenchmarkError, match="'items' must be an integer >= 1"):
        BinPackingBenchmark(items=0)
    with pytest.raises(BenchmarkError, match="'test_size'"):
        BinPackingBenchmark(test_size=-1)
