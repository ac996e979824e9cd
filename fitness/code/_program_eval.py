"""Evaluate candidate programs in sandboxes, scored by trusted code outside them.

A ``ProgramTask`` is trusted code on the host: for each example it builds the
sandbox job (the candidate's files plus the example's public input) and, once
the job has run, scores what the job produced against the ground truth, which
never enters the sandbox. Nothing the candidate prints or writes can set its
score: the scorer reads only the outputs the task declared, and computes the
score itself.

``FunctionCallTask`` is the usual case for code: call the candidate's function
on hidden-test inputs inside the sandbox, compare the returned values with the
expected ones outside it.
"""

from __future__ import annotations

import asyncio
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sandboxes import EndReason, Executor, Job, Limits, Result, untrusted_json

from .._benchmark import Example
from .._errors import BenchmarkError


class ProgramTask(ABC):
    """Trusted: how one example is run in a sandbox, and how its outputs are scored."""

    @abstractmethod
    def job(self, program: Mapping[str, bytes], example: Example) -> Job:
        """The sandbox job for ``example``: the program's files and the public input only."""

    @abstractmethod
    def score(self, example: Example, result: Result) -> float:
        """Score in [0, 1] from the job's declared outputs only (0 for a failed run)."""

    def assess(self, example: Example, result: Result) -> tuple[float, str]:
        """``score`` of a run that ended OK, with a short detail saying why.

        The default gives no detail; tasks that check outputs override it to
        name the check that failed, or what they measured.
        """
        return self.score(example, result), ""


@dataclass(frozen=True)
class ProgramResult:
    """One example's score, why its run ended, and a short excerpt of what it printed.

    ``detail`` often quotes the candidate (its stderr, its output): it is cut
    to ``MAX_DETAIL_CHARS`` and made encodable as UTF-8 (a lone surrogate from
    the candidate's JSON becomes "?"), so that the archive can always store it.
    """

    example_id: str
    score: float
    reason: EndReason
    seconds: float
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", clean_text(self.detail, MAX_DETAIL_CHARS))


#: Longest detail of one example's result, in characters.
MAX_DETAIL_CHARS = 2000


def clean_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and encodable as UTF-8 (lone surrogates -> "?")."""
    text = text[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class ProgramEvaluation:
    """A program's scores on a batch of examples."""

    results: tuple[ProgramResult, ...] = field(default_factory=tuple)

    @property
    def mean(self) -> float:
        return math.fsum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def failures(self) -> int:
        """Runs that did not end with exit code 0 (timeouts, limits, crashes)."""
        return sum(r.reason is not EndReason.OK for r in self.results)

    @property
    def seconds(self) -> float:
        return math.fsum(r.seconds for r in self.results)


class ProgramEvaluator:
    """Runs a program on each example through ``executor`` and scores it with ``task``.

    The examples run concurrently; the executor bounds how many sandboxes run
    at once.
    """

    def __init__(self, executor: Executor, task: ProgramTask) -> None:
        self.executor = executor
        self.task = task

    async def evaluate(self, program: Mapping[str, bytes],
                       examples: Sequence[Example]) -> ProgramEvaluation:
        results = await asyncio.gather(*(self._one(program, e) for e in examples))
        return ProgramEvaluation(tuple(results))

    async def _one(self, program: Mapping[str, bytes], example: Example) -> ProgramResult:
        result = await self.executor.run(self.task.job(program, example))
        if result.reason is EndReason.OK:
            score, detail = self.task.assess(example, result)
        else:
            score, detail = 0.0, _excerpt(result)
        if not 0.0 <= score <= 1.0 or math.isnan(score):
            raise BenchmarkError(f"the scorer gave {score!r} for example {example.id!r}; "
                                 "scores must lie in [0, 1]")
        return ProgramResult(example.id, score, result.reason, result.wall_seconds, detail)


def _excerpt(result: Result, limit: int = 300) -> str:
    """What a reader needs to see why a run failed: the detail and the end of stderr."""
    if result.reason is EndReason.OK:
        return ""
    tail = result.stderr[-limit:].decode("utf-8", "replace").strip()
    return "; ".join(part for part in (result.detail, tail) if part)[:limit * 2]


def json_output(result: Result, name: str, program: str) -> tuple[Any, str | None]:
    """The JSON value ``program`` wrote to the output file ``name``, or ``(None, why not)``
    (a detail for the scorer to report: no such file, or not JSON)."""
    data = result.files.get(name)
    if data is None:
        return None, f"invalid: {program} wrote no {name}"
    try:
        return untrusted_json(data), None
    except ValueError as error:  # UntrustedDataError: not JSON, too deep, too big
        return None, f"invalid: {name} is not acceptable JSON ({error})"[:300]


_RUNNER = "_call_function.py"


def _runner_source() -> bytes:
    return resources.files("fitness.code").joinpath("guest/call_function.py").read_bytes()


@dataclass(frozen=True)
class FunctionCallTask(ProgramTask):
    """Call ``entry_point`` of the candidate's ``module`` once per test input.

    An example's ``meta["args"]`` is the list of argument lists (public: they go
    into the sandbox as ``calls.json``); its ``answer`` is the JSON list of
    expected return values (hidden: only the scorer reads it). The score is the
    fraction of calls whose value equals the expected one (floats compared with
    ``rel_tol``/``abs_tol``). A trusted runner script does the calls and writes
    ``outputs.json``, the only file the scorer reads.
    """

    entry_point: str
    module: str = "solution.py"
    python: str = "python3"
    limits: Limits = field(default_factory=Limits)
    rel_tol: float = 1e-6
    abs_tol: float = 1e-9

    def job(self, program: Mapping[str, bytes], example: Example) -> Job:
        if _RUNNER in program or "calls.json" in program:
            raise BenchmarkError(f"a program may not contain {_RUNNER} or calls.json")
        files = {**program, _RUNNER: _runner_source(),
                 "calls.json": json.dumps(_args(example)).encode()}
        return Job((self.python, _RUNNER, self.module, self.entry_point), files=files,
                   limits=self.limits, collect=("outputs.json",))

    def score(self, example: Example, result: Result) -> float:
        return self.assess(example, result)[0]

    def assess(self, example: Example, result: Result) -> tuple[float, str]:
        expected = json.loads(example.answer)  # the benchmark's own answer: trusted
        outputs, unreadable = json_output(result, "outputs.json", "the runner")
        if unreadable:
            return 0.0, unreadable
        if not isinstance(outputs, list) or len(outputs) != len(expected):
            return 0.0, f"invalid: outputs.json is not a list of {len(expected)} results"
        right = sum(isinstance(o, dict) and "value" in o and
                    _equal(o["value"], e, self.rel_tol, self.abs_tol)
                    for o, e in zip(outputs, expected, strict=True))
        return (right / len(expected) if expected else 0.0), f"{right} of {len(expected)} right"


def _args(example: Example) -> list[list[Any]]:
    args = example.meta.get("args")
    if not isinstance(args, list) or not all(isinstance(a, list) for a in args):
        raise BenchmarkError(f"example {example.id!r} needs meta['args'], a list of argument "
                             "lists")
    return args


def _equal(got: Any, want: Any, rel_tol: float, abs_tol: float) -> bool:
    """JSON values equal, with floats (and ints against floats) compared with tolerances."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        try:
            return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
        except OverflowError:  # an int too large for a float: only an exact match counts
            return got == want
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(
            _equal(g, w, rel_tol, abs_tol) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(
            _equal(got[k], want[k], rel_tol, abs_tol) for k in want)
    return bool(got == want)
