"""Adapter for the procedural datasets of ``reasoning-gym`` (an optional extra).

reasoning-gym derives item ``i`` of a dataset from ``seed + i``, so datasets
with neighbouring seeds overlap. This adapter therefore uses one dataset and
interleaves indices: test takes ``3k``, validation ``3k + 1``, train
``3k + 2``, each skipping questions already used, which keeps the splits
disjoint and each split's items independent of the other splits' sizes.

Scoring extracts one answer from the model output (``<answer>`` tags if
present, else the last ``Answer:`` line, else the last non-empty line) and
hands it to reasoning-gym's own ``score_answer`` for the task.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ._answers import answer_line, last_nonempty_line
from ._benchmark import Benchmark, Example
from ._errors import BenchmarkError
from ._procedural import check_int, check_split_name

_INSTALL_HINT = "pip install 'cladeforge[reasoning-gym]'"
_ANSWER_FORMAT = 'End your reply with a final line of the form "Answer: <your answer>".'
_MAX_ATTEMPTS_PER_ITEM = 20
_INDEX_OFFSETS = MappingProxyType({"test": 0, "validation": 1, "train": 2})


def _import_reasoning_gym() -> Any:
    try:
        return importlib.import_module("reasoning_gym")
    except ImportError as error:
        raise BenchmarkError(
            f"the reasoning_gym benchmark needs the reasoning-gym package: {_INSTALL_HINT}"
        ) from error


class ReasoningGymBenchmark(Benchmark):
    """One reasoning-gym task (e.g. ``leg_counting``) with seeded, disjoint splits."""

    OPTION_DOCS = MappingProxyType(
        {
            "task": "reasoning-gym dataset name, e.g. leg_counting or basic_arithmetic",
            "seed": "seed of the dataset; the same seed gives the same examples",
            "train_size": "number of examples in the train split",
            "validation_size": "number of examples in the validation split",
            "test_size": "number of examples in the held-out test split",
            "config": "extra options of the task's reasoning-gym config (mapping)",
            "description": "the problem description given to the mutator (default: generic)",
            "answer_format": "line appended to every question",
        }
    )

    def __init__(
        self,
        task: str,
        *,
        seed: int = 0,
        train_size: int = 200,
        validation_size: int = 50,
        test_size: int = 50,
        config: Mapping[str, Any] | None = None,
        description: str | None = None,
        answer_format: str = _ANSWER_FORMAT,
    ):
        if not isinstance(task, str) or not task:
            raise BenchmarkError(
                f"option 'task' must be a reasoning-gym dataset name, got {task!r}"
            )
        check_int("seed", seed, 0)
        check_int("train_size", train_size, 0)
        check_int("validation_size", validation_size, 0)
        check_int("test_size", test_size, 0)
        if config is not None and not isinstance(config, Mapping):
            raise BenchmarkError(f"option 'config' must be a mapping, got {config!r}")
        reserved = {"seed", "size"} & set(config or {})
        if reserved:
            raise BenchmarkError(
                f"option 'config' must not set {', '.join(sorted(reserved))}; "
                "use the benchmark's seed and *_size options"
            )
        self.task = task
        self.name = f"reasoning_gym:{task}"
        self.seed = seed
        self.sizes = {"train": train_size, "validation": validation_size, "test": test_size}
        self.config = dict(config or {})
        self.description = description or (
            f"Solve problems of the reasoning-gym task '{task}': read each problem carefully, "
            "reason about it and give the exact final answer."
        )
        self.answer_format = answer_format
        self._dataset: Any = None
        self._splits: dict[str, tuple[Example, ...]] | None = None

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        if self._splits is None:
            self._splits = self._build_splits()
        return self._splits[name]

    def score(self, example: Example, output: str) -> float:
        entry = example.meta["entry"]
        answer = extract_reasoning_gym_answer(output)
        score = float(self._get_dataset().score_answer(answer, entry))
        return min(1.0, max(0.0, score))  # some scorers overshoot by rounding (1.0000000000000002)

    def _get_dataset(self) -> Any:
        if self._dataset is None:
            rg = _import_reasoning_gym()
            factory = importlib.import_module("reasoning_gym.factory")
            if self.task not in factory.DATASETS:
                raise BenchmarkError(
                    f"unknown reasoning-gym task {self.task!r}; known tasks: "
                    + ", ".join(sorted(factory.DATASETS))
                )
            size = 3 * _MAX_ATTEMPTS_PER_ITEM * (max(self.sizes.values()) + 50)
            try:
                self._dataset = rg.create_dataset(
                    self.task, seed=self.seed, size=size, **self.config
                )
            except (TypeError, ValueError, AssertionError) as error:
                raise BenchmarkError(
                    f"reasoning-gym task {self.task!r} rejected its config {self.config!r}: "
                    f"{error or type(error).__name__}"
                ) from error
        return self._dataset

    def _build_splits(self) -> dict[str, tuple[Example, ...]]:
        dataset = self._get_dataset()
        seen: set[str] = set()
        splits: dict[str, tuple[Example, ...]] = {}
        for split in ("test", "validation", "train"):
            offset = _INDEX_OFFSETS[split]
            size = self.sizes[split]
            examples: list[Example] = []
            k = 0
            while len(examples) < size:
                if k >= _MAX_ATTEMPTS_PER_ITEM * (size + 50):
                    raise BenchmarkError(
                        f"{self.name}: too few distinct questions for {size} {split} examples; "
                        "make the task harder through 'config' or the splits smaller"
                    )
                index = 3 * k + offset
                k += 1
                entry = dataset[index]
                question = str(entry["question"])
                if question in seen:
                    continue
                seen.add(question)
                examples.append(
                    Example(
                        f"{self.name}/{split}/{len(examples)}",
                        question,
                        str(entry["answer"]),
                        MappingProxyType({"index": index, "entry": entry}),
                    )
                )
            splits[split] = tuple(examples)
        return splits


def extract_reasoning_gym_answer(output: str) -> str | None:
    """The answer reasoning-gym's scorer sees.

    The last ``<answer>...</answer>`` if present, else the last ``Answer:``
    line, else the last non-empty line; one trailing full stop is dropped.
    """
    start = output.rfind("<answer>")
    end = output.find("</answer>", start) if start != -1 else -1
    if end != -1:
        found: str | None = output[start + len("<answer>") : end].strip()
    else:
        found = answer_line(output)
        if found is None:
            found = last_nonempty_line(output)
    if found is not None and found.endswith(".") and not found.endswith(".."):
        found = found[:-1].rstrip()
    return found
