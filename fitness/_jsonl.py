"""Benchmarks read from JSON Lines files (one JSON object per line), e.g. GSM8K."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ._answers import ANSWER_KINDS, AnswerKind, score_output
from ._benchmark import Benchmark, Example
from ._errors import BenchmarkError
from ._procedural import check_split_name

_FORMAT = "End your reply with a final line of the form "
_DEFAULT_FORMATS: Mapping[str, str] = MappingProxyType(
    {
        "number": _FORMAT + '"Answer: <number>".',
        "boolean": _FORMAT + '"Answer: True" or "Answer: False".',
        "words": _FORMAT + '"Answer: <words, separated by commas>".',
        "text": _FORMAT + '"Answer: <your answer>".',
    }
)


class JsonlBenchmark(Benchmark):
    """Questions and answers from JSONL files.

    Either ``path`` (one file, split into train/validation/test by fractions
    after a seeded shuffle) or per-split files: ``train_path`` is required,
    and a split without its own file is carved out of the train file by its
    fraction. Files given per split keep their order. ``*_size`` options cap a
    split at its first N examples.
    """

    OPTION_DOCS = MappingProxyType(
        {
            "path": "one JSONL file holding all examples, split by fractions",
            "train_path": "JSONL file of the train split (instead of path)",
            "validation_path": "JSONL file of the validation split (default: carved from train)",
            "test_path": "JSONL file of the test split (default: carved from train)",
            "question_field": "field holding the question",
            "answer_field": "field holding the ground-truth answer",
            "answer_pattern": "regex with one group that picks the answer out of the answer field",
            "id_field": "field holding a unique example id (default: file name and line number)",
            "kind": "how answers are compared: " + ", ".join(ANSWER_KINDS),
            "validation_fraction": "share of the data carved out for validation",
            "test_fraction": "share of the data carved out for test",
            "train_size": "use at most this many train examples (null: all)",
            "validation_size": "use at most this many validation examples (null: all)",
            "test_size": "use at most this many test examples (null: all)",
            "seed": "seed of the shuffle used when splits are carved out of one file",
            "name": "short name used in reports",
            "description": "the problem description given to the mutator",
            "answer_format": "line appended to every question (default: one per kind)",
        }
    )

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        train_path: str | Path | None = None,
        validation_path: str | Path | None = None,
        test_path: str | Path | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        answer_pattern: str | None = None,
        id_field: str | None = None,
        kind: AnswerKind = "number",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        train_size: int | None = None,
        validation_size: int | None = None,
        test_size: int | None = None,
        seed: int = 0,
        name: str = "jsonl",
        description: str = "Answer the question.",
        answer_format: str | None = None,
    ):
        if (path is None) == (train_path is None):
            raise BenchmarkError("JsonlBenchmark needs exactly one of 'path' or 'train_path'")
        if path is not None and (validation_path is not None or test_path is not None):
            raise BenchmarkError(
                "give either 'path' (one file split by fractions) or per-split files "
                "('train_path', 'validation_path', 'test_path'), not both"
            )
        if kind not in ANSWER_KINDS:
            raise BenchmarkError(f"unknown answer kind {kind!r}; expected one of {ANSWER_KINDS}")
        for option, fraction in (
            ("validation_fraction", validation_fraction),
            ("test_fraction", test_fraction),
        ):
            if not 0.0 <= fraction < 1.0:
                raise BenchmarkError(f"option {option!r} must be in [0, 1), got {fraction}")
        if validation_fraction + test_fraction >= 1.0:
            raise BenchmarkError("validation_fraction + test_fraction must be below 1")
        if answer_pattern is not None:
            try:
                groups = re.compile(answer_pattern).groups
            except re.error as error:
                raise BenchmarkError(f"answer_pattern {answer_pattern!r}: {error}") from error
            if groups != 1:
                raise BenchmarkError(
                    f"answer_pattern {answer_pattern!r} must have exactly one group, has {groups}"
                )
        self.path = path
        self.split_paths = {"train": train_path, "validation": validation_path, "test": test_path}
        self.question_field = question_field
        self.answer_field = answer_field
        self.answer_pattern = answer_pattern
        self.id_field = id_field
        self.kind: AnswerKind = kind
        self.fractions = {"validation": validation_fraction, "test": test_fraction}
        self.sizes = {"train": train_size, "validation": validation_size, "test": test_size}
        self.seed = seed
        self.name = name
        self.description = description
        self.answer_format = answer_format or _DEFAULT_FORMATS[kind]
        self._splits: dict[str, tuple[Example, ...]] | None = None

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        if self._splits is None:
            self._splits = self._load()
        return self._splits[name]

    def score(self, example: Example, output: str) -> float:
        return score_output(output, example.answer, self.kind)

    # ------------------------------------------------------------- loading

    def _load(self) -> dict[str, tuple[Example, ...]]:
        if self.path is not None:
            carved = self._carve(self._read_file(self.path), ("test", "validation"))
        else:
            given = {
                split: self._read_file(path)
                for split, path in self.split_paths.items()
                if path is not None
            }
            missing = tuple(split for split in ("test", "validation") if split not in given)
            carved = self._carve(given["train"], missing) if missing else dict(given)
            carved.update({split: given[split] for split in given if split != "train"})
        splits: dict[str, tuple[Example, ...]] = {}
        for split, examples in carved.items():
            size = self.sizes[split]
            splits[split] = tuple(examples if size is None else examples[:size])
        ids = [example.id for examples in splits.values() for example in examples]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise BenchmarkError(f"{self.name}: example id {duplicate!r} occurs more than once")
        return splits

    def _carve(self, examples: list[Example], carve: tuple[str, ...]) -> dict[str, list[Example]]:
        """Shuffle ``examples`` with the seed and cut the ``carve`` splits off the front."""
        order = np.random.default_rng(self.seed).permutation(len(examples))
        shuffled = [examples[int(i)] for i in order]
        result: dict[str, list[Example]] = {}
        start = 0
        for split in carve:
            count = round(self.fractions[split] * len(shuffled))
            result[split] = shuffled[start : start + count]
            start += count
        result["train"] = shuffled[start:]
        return result

    def _read_file(self, path: str | Path) -> list[Example]:
        """The examples of one JSONL file; ``BenchmarkError`` names file:line on bad input."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError as error:
            raise BenchmarkError(f"benchmark file not found: {file}") from error
        except (OSError, UnicodeDecodeError) as error:
            raise BenchmarkError(f"cannot read benchmark file {file}: {error}") from error
        pattern = re.compile(self.answer_pattern) if self.answer_pattern is not None else None
        examples = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                examples.append(self._example(line, file, number, pattern))
        if not examples:
            raise BenchmarkError(f"benchmark file {file} has no examples")
        return examples

    def _example(
        self, line: str, file: Path, number: int, pattern: re.Pattern[str] | None
    ) -> Example:
        where = f"{file}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BenchmarkError(f"{where}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict):
            raise BenchmarkError(f"{where}: expected a JSON object, got {type(record).__name__}")
        question = _field(record, self.question_field, where)
        answer = _field(record, self.answer_field, where)
        if pattern is not None:
            match = pattern.search(answer)
            if match is None or match.group(1) is None:
                raise BenchmarkError(
                    f"{where}: answer_pattern {pattern.pattern!r} does not match the "
                    f"{self.answer_field!r} field"
                )
            answer = match.group(1).strip()
        example_id = (
            f"{file.stem}:{number}"
            if self.id_field is None
            else _field(record, self.id_field, where)
        )
        meta = {
            key: value
            for key, value in record.items()
            if key not in (self.question_field, self.answer_field)
        }
        return Example(example_id, question, answer, MappingProxyType(meta))


def _field(record: Mapping[str, Any], field: str, where: str) -> str:
    if field not in record:
        raise BenchmarkError(
            f"{where}: no field {field!r} (fields: {', '.join(sorted(record)) or 'none'})"
        )
    value = record[field]
    if isinstance(value, dict | list) or value is None:
        raise BenchmarkError(f"{where}: field {field!r} must be a string or number, got {value!r}")
    return str(value)
