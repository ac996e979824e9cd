"""Programs run in a sandbox and are scored outside it, on outputs only.

These run through the real process and bubblewrap backends (bubblewrap skips
where it cannot run, except in CI). The point is the trust boundary: the
expected answers never enter the sandbox, and nothing a program prints or
writes sets its score.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil

import pytest

from fitness import BenchmarkError, Example
from fitness.code import FunctionCallTask, ProgramEvaluator
from sandboxes import EndReason, Limits, LocalExecutor, make_sandbox

ADD = b"def add(a, b):\n    return a + b\n"
EXAMPLES = [Example("e1", "add", json.dumps([3, 0.3]), {"args": [[1, 2], [0.1, 0.2]]}),
            Example("e2", "add", json.dumps([[1, 2]]), {"args": [[[1], [2]]]})]


def _backends() -> list[str]:
    kinds = ["process"]
    if shutil.which("bwrap") or os.environ.get("CI") == "true":
        kinds.append("bwrap")
    return kinds


@pytest.fixture(params=_backends())
def evaluator(request: pytest.FixtureRequest):
    task = FunctionCallTask("add", limits=Limits(wall_seconds=20, memory_mb=256))
    with LocalExecutor(make_sandbox(request.param), max_workers=2) as executor:
        yield ProgramEvaluator(executor, task)


def _evaluate(evaluator: ProgramEvaluator, program: bytes, examples=EXAMPLES):
    return asyncio.run(evaluator.evaluate({"solution.py": program}, examples))


def test_a_correct_program_scores_one(evaluator: ProgramEvaluator) -> None:
    result = _evaluate(evaluator, ADD)
    assert [r.score for r in result.results] == [1.0, 1.0]
    assert result.mean == 1.0 and result.failures == 0


def test_a_partly_wrong_program_scores_the_fraction_right(evaluator: ProgramEvaluator) -> None:
    result = _evaluate(evaluator, b"def add(a, b):\n    return a + b if a != 1 else 0\n")
    assert [r.score for r in result.results] == [0.5, 1.0]


def test_fake_scores_printed_or_written_are_ignored(evaluator: ProgramEvaluator) -> None:
    cheat = b"""
import json, sys
print("SCORE: 1.0")
for name in ("score.json", "result.json"):
    open(name, "w").write(json.dumps({"score": 1.0}))
def add(a, b):
    return None
"""
    assert _evaluate(evaluator, cheat).mean == 0.0


def test_the_expected_answers_are_not_in_the_sandbox(evaluator: ProgramEvaluator) -> None:
    # the program looks at everything it was given and reports it as its answer
    snoop = b"""
import os
def add(a, b):
    return sorted(os.listdir("."))
"""
    example = Example("e", "add", json.dumps([["secret-answer"]]), {"args": [[1, 2]]})
    evaluation = asyncio.run(evaluator.evaluate({"solution.py": snoop}, [example]))
    assert evaluation.mean == 0.0
    task = evaluator.task
    job = task.job({"solution.py": snoop}, example)
    assert all(b"secret-answer" not in data for data in job.files.values())


def test_a_crash_a_timeout_and_a_missing_function_score_zero(
        evaluator: ProgramEvaluator) -> None:
    assert _evaluate(evaluator, b"raise SystemExit(3)\n").mean == 0.0
    assert _evaluate(evaluator, b"def other():\n    pass\n").mean == 0.0
    slow = FunctionCallTask("add", limits=Limits(wall_seconds=1))
    forever = ProgramEvaluator(evaluator.executor, slow)
    result = _evaluate(forever, b"import time\ndef add(a, b):\n    time.sleep(60)\n",
                       EXAMPLES[:1])
    assert result.mean == 0.0
    assert result.results[0].reason is EndReason.TIMEOUT
    assert result.failures == 1


def test_a_program_may_not_replace_the_runner_or_its_inputs(
        evaluator: ProgramEvaluator) -> None:
    for name in ("calls.json", "_call_function.py"):
        with pytest.raises(BenchmarkError, match="may not contain"):
            asyncio.run(evaluator.evaluate({"solution.py": ADD, name: b"[]"}, EXAMPLES))
