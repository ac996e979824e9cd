"""Trusted scorers fed hostile outputs: each gives 0 with a reason and never raises.

A candidate controls what its run leaves: files nested thousands of levels
deep, megabytes of JSON, bytes that are not UTF-8, numbers no float can hold,
strings with lone surrogates. Every scorer here reads such output directly
from a ``Result`` (no sandbox needed: the point is the parser on the host).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Mapping

import pytest

from fitness import Example, parse_number, score_output
from fitness.code import (
    BinPackingBenchmark,
    CirclePackingBenchmark,
    FunctionCallTask,
    ProgramEvaluator,
)
from fitness.code._humaneval import _completions
from fitness.code._program_eval import ProgramResult, json_output
from fitness.code._user_benchmark import _verdict
from sandboxes import EndReason, Job, Result

DEEP = b"[" * 100_000 + b"]" * 100_000  # past the C parser's recursion limit
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
NESTED_200 = b"[" * 200 + b"]" * 200  # json.loads takes it; trusted code must not recurse on it
HUGE = b"[" + b"1," * 2_000_000 + b"1]"
NOT_UTF8 = b"\xff\xfe[1, 2]"
LONE_SURROGATE = b'["\\ud800", "x\\udfff"]'
BIG_INT = b"[" + b"9" * 4000 + b"]"
TOO_MANY_DIGITS = b"9" * 5000  # past sys.get_int_max_str_digits: int() refuses it
NOT_FINITE = b"[NaN, Infinity, -Infinity, 1e999]"

HOSTILE = {"deep": DEEP, "deep_object": DEEP_OBJECT, "nested_200": NESTED_200, "huge": HUGE,
           "not_utf8": NOT_UTF8, "lone_surrogate": LONE_SURROGATE, "big_int": BIG_INT,
           "too_many_digits": TOO_MANY_DIGITS, "not_finite": NOT_FINITE, "empty": b"",
           "garbage": b"\x00\x01 not json {"}


def ran(files: Mapping[str, bytes] | None = None, stdout: bytes = b"") -> Result:
    return Result(EndReason.OK, 0, stdout, b"", files or {}, 0.1)


def storable(text: str) -> None:
    """The archive (SQLite) can store ``text``: no lone surrogates reach it."""
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE t (x TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (text,))


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_json_output_refuses_with_a_reason(payload: bytes) -> None:
    value, why = json_output(ran({"out.json": payload}), "out.json", "prog.py")
    if why is None:  # valid JSON within the bounds: the checks after the parse judge it
        assert payload in (HUGE, LONE_SURROGATE, BIG_INT, NOT_FINITE)
    else:
        assert value is None and why.startswith("invalid: out.json") and len(why) <= 300


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_circle_packing_scores_zero_with_a_reason(payload: bytes) -> None:
    bench = CirclePackingBenchmark()
    example = bench.split("train")[0]
    score, detail = bench.task.assess(example, ran({"circles.json": payload}))
    assert score == 0.0 and detail.startswith("invalid: ")
    storable(ProgramResult(example.id, score, EndReason.OK, 0.1, detail).detail)


def test_circle_packing_with_hostile_entries() -> None:
    bench = CirclePackingBenchmark(n=3, reference=1.0)
    example = bench.split("train")[0]
    for circles in (b"[[" + b"9" * 4000 + b", 0.5, 0.1], [0.5, 0.5, 0.1], [0.1, 0.1, 0.05]]",
                    b"[" + NESTED_200 + b", [0.5, 0.5, 0.1], [0.1, 0.1, 0.05]]",
                    b'[["\\ud800", 0, 0], [0.5, 0.5, 0.1], [0.1, 0.1, 0.05]]'):
        score, detail = bench.task.assess(example, ran({"circles.json": circles}))
        assert score == 0.0 and detail.startswith("invalid: ")


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_bin_packing_scores_zero_with_a_reason(payload: bytes) -> None:
    bench = BinPackingBenchmark(items=5, train_size=1)
    example = bench.split("train")[0]
    score, detail = bench.task.assess(example, ran({"assignments.json": payload}))
    assert score == 0.0 and detail.startswith("invalid: ")


def test_bin_packing_with_hostile_bin_indices() -> None:
    bench = BinPackingBenchmark(items=3, train_size=1)
    example = bench.split("train")[0]
    for indices in (b"[-" + b"9" * 4000 + b", 0, 0]", b"[" + NESTED_200 + b", 0, 0]",
                    b'["\\ud800", 0, 0]', b"[1e999, 0, 0]"):
        score, detail = bench.task.assess(example, ran({"assignments.json": indices}))
        assert score == 0.0 and detail.startswith("invalid: ")
        storable(ProgramResult(example.id, score, EndReason.OK, 0.1, detail).detail)


CALLS = Example("c", "f", json.dumps([1, [1, 2], 0.5]), {"args": [[1], [2], [3]]})


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_function_calls_score_zero_with_a_reason(payload: bytes) -> None:
    score, detail = FunctionCallTask("f").assess(CALLS, ran({"outputs.json": payload}))
    assert score == 0.0 and detail.startswith("invalid: ")
    assert FunctionCallTask("f").score(CALLS, ran({"outputs.json": payload})) == 0.0


def test_function_call_values_no_float_can_hold_count_as_wrong() -> None:
    outputs = json.dumps([{"value": 10 ** 400}, {"value": [1, 10 ** 400]},
                          {"value": float("inf")}]).encode()
    score, detail = FunctionCallTask("f").assess(CALLS, ran({"outputs.json": outputs}))
    assert score == 0.0 and detail == "0 of 3 right"
    exact = Example("c", "f", json.dumps([10 ** 400]), {"args": [[1]]})
    good = json.dumps([{"value": 10 ** 400}]).encode()
    assert FunctionCallTask("f").assess(exact, ran({"outputs.json": good}))[0] == 1.0


class _CannedExecutor:
    """Stands in for a sandbox executor: every job 'ran' and left ``files``."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files

    async def run(self, job: Job) -> Result:
        return ran(self.files)


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_program_evaluator_records_each_as_a_scored_example(payload: bytes) -> None:
    evaluator = ProgramEvaluator(_CannedExecutor({"outputs.json": payload}),  # type: ignore[arg-type]
                                 FunctionCallTask("f"))
    evaluation = asyncio.run(evaluator.evaluate({"solution.py": b""}, [CALLS]))
    [result] = evaluation.results
    assert result.score == 0.0 and result.detail.startswith("invalid: ")


VERDICTS = {**HOSTILE,
            "deep_detail": b'{"score": 1, "detail": ' + DEEP + b"}",
            "huge_int_score": b'{"score": ' + b"9" * 4000 + b"}",
            "nan_score": b'{"score": NaN}', "inf_score": b'{"score": Infinity}',
            "list_score": b'{"score": [1]}', "nested_detail": b'{"score": 1, "detail": '
            + NESTED_200 + b"}"}


@pytest.mark.parametrize("stdout", VERDICTS.values(), ids=VERDICTS.keys())
def test_a_user_evaluators_verdict_line_that_is_not_a_score_gives_none_with_a_reason(
        stdout: bytes) -> None:
    score, detail = _verdict(ran(stdout=b"noise\n" + stdout + b"\n"))
    assert score is None and detail and len(detail) < 1000
    storable(detail)


def test_a_user_evaluators_detail_with_lone_surrogates_is_stored_cleaned() -> None:
    score, detail = _verdict(ran(stdout=b'{"score": 0.5, "detail": "bad \\ud800 text"}\n'))
    assert score == 0.5
    cleaned = ProgramResult("e", score, EndReason.OK, 0.1, detail).detail
    assert cleaned == "bad ? text"
    storable(cleaned)


@pytest.mark.parametrize("payload", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_humaneval_agents_completions_that_cannot_be_read_are_missing_with_a_reason(
        payload: bytes) -> None:
    programs, missing = _completions(ran({"completions.json": payload,
                                          "errors.json": payload}), ["t/0"])
    assert programs == {} and missing["t/0"].startswith("no completion")


def test_a_humaneval_program_that_is_not_utf8_text_is_refused() -> None:
    agent = ran({"completions.json": b'{"t/0": "def f():\\n    return \\"\\ud800\\"\\n"}',
                 "errors.json": b'{"t/1": "\\udfff"}'})
    programs, missing = _completions(agent, ["t/0", "t/1"])
    assert programs == {}
    assert "not valid UTF-8 text" in missing["t/0"]
    storable(ProgramResult("t/1", 0.0, EndReason.EXIT, 0.1, missing["t/1"]).detail)


def test_answers_with_more_digits_than_python_converts_do_not_match() -> None:
    output = "The answer is: " + "9" * 5000
    assert parse_number(output) is None
    assert score_output(output, "42", "number") == 0.0


def test_a_function_returning_a_deep_value_loses_that_call_only() -> None:
    """Run for real (process backend): the runner turns a value nested past its bound into
    that call's error, so the scorer still reads the other calls."""
    from sandboxes import LocalExecutor, make_sandbox

    program = (b"def f(n):\n    v = 0\n    for _ in range(n):\n        v = [v]\n    return v\n")
    example = Example("d", "f", json.dumps([[0], [[[0]]], 1]), {"args": [[1], [3], [500]]})
    with LocalExecutor(make_sandbox("process"), max_workers=1) as executor:
        evaluation = asyncio.run(ProgramEvaluator(executor, FunctionCallTask("f")).evaluate(
            {"solution.py": program}, [example]))
    [result] = evaluation.results
    assert result.reason is EndReason.OK
    assert result.score == pytest.approx(2 / 3) and result.detail == "2 of 3 right"
