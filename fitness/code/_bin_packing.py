"""Online bin packing: evolve the priority function of a greedy packer (as in FunSearch).

Items arrive one at a time and each must go into a bin at once; bins have a
fixed ``capacity``. The candidate program, ``heuristic.py``, defines
``priority(item, bins)``: given the item's size and the remaining capacities
of the open bins it fits in, followed by one new empty bin (remaining =
capacity), it returns one score per bin, and its driver puts the item into the
best-scoring bin. The seed is best fit.

Instances are generated on the host, deterministically from ``seed``:
instance ``i`` of split ``s`` draws ``items`` integer sizes uniformly from
``[min_size, max_size]`` with ``numpy.random.default_rng([seed, k, i])``,
where ``k`` is the index of ``s`` in ``SPLITS`` (train 0, validation 1, test
2). The defaults (sizes 20..100, capacity 150, 120 items) follow the
OR-Library "u" class (Falkenauer's uniform instances) used by FunSearch. Each
instance is one example; the splits are different instance sets.

In the sandbox the program reads ``items.json`` (``{"capacity": C, "items":
[...]}``) and writes ``assignments.json``: the bin index of each item, in item
order. Trusted code on the host re-checks it: one non-negative integer bin
index per item (each item placed exactly once), and no bin holding more than
the capacity. An invalid assignment scores 0, with the reason in the detail.
A valid one scores ``L1 / bins_used``, where ``L1 = ceil(sum(items) /
capacity)`` is the classic lower bound on the bins needed; the score lies in
(0, 1] and the benchmark's score is its mean over the instances.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from sandboxes import Job, Limits, Result

from .._benchmark import SPLITS, Example
from .._errors import BenchmarkError
from .._procedural import check_int, check_split_name
from ._benchmark import CodeBenchmark, EvaluationEnv
from ._program_eval import ProgramEvaluation, ProgramEvaluator, ProgramTask, json_output

PROGRAM = "heuristic.py"
INPUT = "items.json"
OUTPUT = "assignments.json"

_SEED = '''"""Online bin packing: each arriving item goes into the bin with the highest priority.

Reads items.json ({"capacity": C, "items": [sizes]}) and writes assignments.json:
the bin index of each item, in order. Fewer bins is better.
"""

import json


# EVOLVE-BLOCK-START
def priority(item, bins):
    """Return one score per bin; the item goes into the bin with the highest score.

    item: the size of the arriving item.
    bins: the remaining capacities of the open bins that can hold the item,
          followed by one new, empty bin (its remaining capacity is the full capacity).
    """
    # best fit: prefer the bin that the item fills most tightly
    return [-(b - item) for b in bins]
# EVOLVE-BLOCK-END


def pack(items, capacity):
    remaining = []  # remaining capacity of each open bin
    assignment = []
    for item in items:
        fits = [i for i, left in enumerate(remaining) if left >= item]
        options = [remaining[i] for i in fits] + [capacity]
        scores = list(priority(item, options))
        if len(scores) != len(options):
            raise ValueError(f"priority gave {len(scores)} scores for {len(options)} bins")
        best = max(range(len(options)), key=lambda k: scores[k])
        if best == len(fits):
            remaining.append(capacity - item)
            assignment.append(len(remaining) - 1)
        else:
            remaining[fits[best]] -= item
            assignment.append(fits[best])
    return assignment


def main():
    with open("items.json") as handle:
        data = json.load(handle)
    with open("assignments.json", "w") as handle:
        json.dump(pack(data["items"], data["capacity"]), handle)


if __name__ == "__main__":
    main()
'''


def lower_bound(items: Sequence[int], capacity: int) -> int:
    """L1: the total size over the capacity, rounded up (at least 1 for a non-empty instance)."""
    return max(1, -(-sum(items) // capacity)) if items else 0


def check_assignment(items: Sequence[int], capacity: int,
                     assignment: Any) -> tuple[int | None, str]:
    """``(bins used, "")`` if ``assignment`` packs ``items`` validly, else ``(None, why)``."""
    if not isinstance(assignment, list):
        return None, f"{OUTPUT} must hold a JSON list, got {type(assignment).__name__}"
    if len(assignment) != len(items):
        return None, (f"{len(assignment)} bin indices for {len(items)} items "
                      "(each item must be placed exactly once)")
    loads: dict[int, int] = {}
    for k, (size, index) in enumerate(zip(items, assignment, strict=True)):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return None, f"item {k} has bin {json.dumps(index)[:40]}, not a bin index (int >= 0)"
        loads[index] = loads.get(index, 0) + size
    for index, load in sorted(loads.items()):
        if load > capacity:
            return None, f"bin {index} holds {load}, over the capacity {capacity}"
    return len(loads), ""


@dataclass(frozen=True)
class BinPackingTask(ProgramTask):
    """Trusted: give the program one instance, re-check its assignment, score L1 / bins used."""

    limits: Limits
    python: str = "python3"

    def job(self, program: Mapping[str, bytes], example: Example) -> Job:
        data = {"capacity": example.meta["capacity"], "items": list(example.meta["items"])}
        files = {**program, INPUT: json.dumps(data).encode()}
        return Job((self.python, PROGRAM), files=files, limits=self.limits, collect=(OUTPUT,))

    def score(self, example: Example, result: Result) -> float:
        return self.assess(example, result)[0]

    def assess(self, example: Example, result: Result) -> tuple[float, str]:
        items, capacity = example.meta["items"], example.meta["capacity"]
        assignment, unreadable = json_output(result, OUTPUT, PROGRAM)
        if unreadable:
            return 0.0, unreadable
        used, why = check_assignment(items, capacity, assignment)
        if used is None:
            return 0.0, f"invalid: {why}"
        bound = lower_bound(items, capacity)
        return bound / used, f"{used} bins for {len(items)} items (lower bound {bound})"


class BinPackingBenchmark(CodeBenchmark):
    """Online bin packing on generated instances (see the module doc for the generator)."""

    OPTION_DOCS = MappingProxyType(
        {
            "seed": "seed of the instance generator",
            "items": "number of items per instance",
            "capacity": "bin capacity",
            "min_size": "smallest item size (sizes are uniform integers)",
            "max_size": "largest item size",
            "train_size": "number of train instances",
            "validation_size": "number of validation instances",
            "test_size": "number of test instances",
            "wall_seconds": "wall-time limit of one run of the program (one instance)",
            "memory_mb": "memory limit of one run of the program",
            "name": "short name used in reports",
        }
    )

    def __init__(self, *, seed: int = 0, items: int = 120, capacity: int = 150,
                 min_size: int = 20, max_size: int = 100, train_size: int = 3,
                 validation_size: int = 3, test_size: int = 5, wall_seconds: float = 30.0,
                 memory_mb: int = 512, name: str = "bin_packing") -> None:
        check_int("items", items, 1)
        check_int("capacity", capacity, 1)
        check_int("min_size", min_size, 1)
        check_int("max_size", max_size, min_size)
        if max_size > capacity:
            raise BenchmarkError(f"option 'max_size' ({max_size}) must not exceed 'capacity' "
                                 f"({capacity}): every item must fit in a bin")
        for option, value in (("train_size", train_size), ("validation_size", validation_size),
                              ("test_size", test_size)):
            check_int(option, value, 0)
        self.seed = seed
        self.items = items
        self.capacity = capacity
        self.sizes = (min_size, max_size)
        self.split_sizes = {"train": train_size, "validation": validation_size,
                            "test": test_size}
        self.limits = Limits(wall_seconds=wall_seconds, memory_mb=memory_mb, cpus=1.0)
        self.name = name
        self.description = _description(items, capacity, min_size, max_size, wall_seconds,
                                        memory_mb)
        self.task = BinPackingTask(self.limits)
        self._splits: dict[str, tuple[Example, ...]] = {}

    def seed_files(self) -> Mapping[str, str]:
        return {PROGRAM: _SEED}

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        if name not in self._splits:
            self._splits[name] = tuple(self._instance(name, i)
                                       for i in range(self.split_sizes[name]))
        return self._splits[name]

    def _instance(self, split: str, index: int) -> Example:
        rng = np.random.default_rng([self.seed, SPLITS.index(split), index])
        low, high = self.sizes
        items = tuple(int(v) for v in rng.integers(low, high, size=self.items, endpoint=True))
        bound = lower_bound(items, self.capacity)
        question = f"{self.items} items of sizes {low}..{high}, bin capacity {self.capacity}"
        return Example(f"binpack-{split}-{index}", question, str(bound),
                       MappingProxyType({"items": items, "capacity": self.capacity}))

    async def evaluate(self, files: Mapping[str, bytes], examples: Sequence[Example],
                       env: EvaluationEnv) -> ProgramEvaluation:
        return await ProgramEvaluator(env.executor, self.task).evaluate(files, examples)


def _description(items: int, capacity: int, low: int, high: int, wall_seconds: float,
                 memory_mb: int) -> str:
    return (
        "Online bin packing. Items arrive one by one and each must be put into a bin at "
        f"once; every bin has capacity {capacity}. Minimise the number of bins used.\n"
        f"The program {PROGRAM} is run as `python3 {PROGRAM}` (Python 3.11 with numpy; no "
        f"network; {wall_seconds:g} s wall time, {memory_mb} MB memory, one CPU) on one "
        f"instance at a time: {items} integer item sizes drawn uniformly from {low}..{high}. "
        f"It reads {INPUT} ({{\"capacity\": {capacity}, \"items\": [...]}}) and writes "
        f"{OUTPUT}: the bin index (0, 1, 2, ...) of each item, in item order.\n"
        "Improve priority(item, bins) between the EVOLVE-BLOCK markers: bins lists the "
        "remaining capacities of the open bins the item fits in, then one new empty bin "
        f"(remaining {capacity}); it returns one score per bin and the item goes into the "
        "highest-scoring one. The seed is best fit.\n"
        "The evaluator re-checks every assignment (each item in exactly one bin, no bin over "
        "capacity; otherwise the score is 0) and scores L1 / bins used, where L1 = "
        "ceil(sum of sizes / capacity) is a lower bound on the bins needed; the benchmark "
        "score is the mean over instances. Only the assignment file is read."
    )
