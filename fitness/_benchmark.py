"""Benchmarks: examples with ground truth in fixed splits, and a trusted scorer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One benchmark item. ``answer`` is the ground truth the scorer compares against."""

    id: str
    question: str
    answer: str
    meta: Mapping[str, Any] = field(default_factory=dict)


class Benchmark(ABC):
    """A task with fixed train/validation/test splits and a trusted scorer.

    The scorer is code outside the prompt's reach: it extracts the answer from
    the model's raw output and compares it with the ground truth.
    """

    #: short name used in configs and reports
    name: str
    #: the problem description given to the mutator (Promptbreeder's "P")
    description: str
    #: one line telling the model how to end its answer, appended to every query
    answer_format: str

    @abstractmethod
    def split(self, name: str) -> Sequence[Example]:
        """The examples of ``name`` (one of ``SPLITS``), always in the same order."""

    @abstractmethod
    def score(self, example: Example, output: str) -> float:
        """Score in [0, 1] of the model's raw ``output`` for ``example``."""
