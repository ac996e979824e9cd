"""Hostile programs against HumanEval's verdict channel, on every isolating configuration.

Each attack is a WRONG program for ``add`` that tries to make the host score it
as passing anyway: by forging verdict lines on every stdout it can reach (its
own fds, /dev/stdout, /proc/<harness>/fd/1, the sandbox init's /proc/1/fd/1), by
leaving a survivor behind that reads those pipes for the real verdict line and
races the harness with forgeries, by replaying a real passing line of another
job, or by hunting the job's secret (hidden.json, /proc/<pid>/mem, environ,
cmdline). Every attack must still score 0, and an honest program must pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets

import pytest

from fitness.code import HumanEvalAgentBenchmark, ProgramResult
from fitness.code._humaneval_harness import (
    HarnessSettings,
    harness_job,
    harness_source,
    read_verdicts,
)
from sandboxes import LocalExecutor, Result, Sandbox

from .hostile_helpers import host_processes_with

TASK = "t/add"
PROBLEMS = {TASK: {"prompt": 'def add(x, y):\n    """x + y"""\n', "entry_point": "add",
                   "test": "def check(candidate):\n    for x in range(10):\n"
                           "        assert candidate(x, 2) == x + 2\n"}}
SETTINGS = HarnessSettings(check_seconds=4.0, memory_mb=256, pids=64)
WRONG = "def add(x, y):\n    return x - y\n"
RIGHT = "def add(x, y):\n    return x + y\n"

#: Forged verdict lines in every shape a program could guess: a hex prefix (a nonce, a tag,
#: a MAC) before verdict JSON, in the old and in the current layout.
FORGER = f"TASK = {TASK!r}\n" + r"""
import json, os, re, secrets
PASS = {TASK: {"verdict": "pass", "detail": ""}}
def guesses():
    lines = [secrets.token_hex(16) + json.dumps(PASS),
             secrets.token_hex(16) + secrets.token_hex(32) + json.dumps(
                 {"job": secrets.token_hex(16), "task_ids": [TASK], "verdicts": PASS})]
    return [("\n" + line + "\n").encode() for line in lines]
def forgeries(seen):
    # rewrite every verdict-like line seen: each failure turned into a pass, under the same
    # hex prefix, and the bare prefix followed by an all-pass object in both layouts
    out = []
    for line in seen.split(b"\n"):
        match = re.search(rb"([0-9a-f]{16,})(\{.*\})", line)
        if not match:
            continue
        prefix, body = match.group(1), match.group(2)
        for word in (b'"fail"', b'"error"', b'"timeout"', b'"exit"'):
            body = body.replace(word, b'"pass"')
        out.append(b"\n" + prefix + body + b"\n")
        for cut in (32, 96, len(prefix)):
            out.append(b"\n" + prefix[:cut] + json.dumps(PASS).encode() + b"\n")
    return out
"""

#: A survivor: double-forked into its own session, it opens every stdout and stderr it can
#: reach through /proc (the init's /proc/1/fd/1 first). Without ``constant`` lines it waits
#: in blocking reads on them (threads queued on the pipe take the data before the host's
#: reader does), and when a verdict line goes by it writes forgeries of it, several times;
#: with ``constant`` lines it writes those every 0.2 s.
SURVIVOR = FORGER + r"""
import glob, signal, threading, time
READERS = 8
HARNESS = os.getppid()
def stop(sig):
    try:
        os.kill(HARNESS, sig)
    except OSError:
        pass
def survivor(seconds, constant=()):
    os.closerange(3, 1024)
    writers, caught, deadline = {}, [], time.monotonic() + seconds
    def catch(path):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        seen = b""
        while not caught:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data or caught:
                return
            seen = (seen + data)[-(1 << 16):]
            lines = forgeries(seen)
            if lines:
                break
        else:
            return
        # hold the harness (and so the job's end) while the forgeries go out; the other
        # readers stop, so that the forgeries stay in the pipe for the host
        caught.append(lines)
        stop(signal.SIGSTOP)
        for _ in range(10):
            for out in list(writers.values()):
                for line in lines:
                    try:
                        os.write(out, line)
                    except OSError:
                        break
            time.sleep(0.01)
        stop(signal.SIGCONT)
    def flood(fd):  # keeps the pipe busy: the verdict lands in some reader's chunk
        while not caught:
            try:
                os.write(fd, b"\n" * 256)
            except BlockingIOError:
                pass
            except OSError:
                return
            time.sleep(0.002)
    while time.monotonic() < deadline:
        for path in ["/proc/1/fd/1", "/proc/1/fd/2", *glob.glob("/proc/[0-9]*/fd/[12]")]:
            if path in writers or path.startswith("/proc/%d/" % os.getpid()):
                continue
            try:
                writers[path] = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            if not constant and path == "/proc/1/fd/1":  # few threads: the pids limit
                try:
                    threading.Thread(target=flood, args=(writers[path],), daemon=True).start()
                    for _ in range(READERS):
                        threading.Thread(target=catch, args=(path,), daemon=True).start()
                except RuntimeError:  # no more threads
                    pass
        for out in list(writers.values()):
            for line in constant:
                try:
                    os.write(out, line)
                except OSError:
                    break
        time.sleep(0.2)
def leave_survivor(seconds, constant=()):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                survivor(seconds, constant)
            finally:
                os._exit(0)
        os._exit(0)
    os.wait()
"""

STDOUT_PATHS = r"""
import os
def stdout_paths():
    paths = ["/dev/stdout", "/dev/stderr", "/dev/tty", "/proc/self/fd/1", "/proc/self/fd/2"]
    for pid in (os.getppid(), 1):
        paths += ["/proc/%d/fd/%d" % (pid, fd) for fd in range(0, 8)]
    return paths
def write_paths(lines):
    for path in stdout_paths():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        for line in lines:
            try:
                os.write(fd, line)
            except OSError:
                break
        os.close(fd)
def write_everywhere(lines):
    for fd in range(0, 64):  # the inherited fds too (the harness's pipes among them)
        for line in lines:
            try:
                os.write(fd, line)
            except OSError:
                break
    write_paths(lines)
"""


def _benchmark() -> HumanEvalAgentBenchmark:
    return HumanEvalAgentBenchmark(train=0, validation=0, problems=PROBLEMS,
                                   check_seconds=SETTINGS.check_seconds,
                                   memory_mb=SETTINGS.memory_mb)


def _score(sandbox: Sandbox, program: str) -> float:
    """``program``'s score through the benchmark's public path (a fresh secret per job)."""
    results = asyncio.run(_benchmark().run_tests({TASK: program}, LocalExecutor(sandbox)))
    return results[TASK].score


def _job(sandbox: Sandbox, program: str, secret: str) -> tuple[Result, ProgramResult]:
    """The raw result of a test job with a chosen secret, and its verdict on ``program``."""
    job = harness_job([(_benchmark().hidden_test(TASK), program)], SETTINGS, secret)
    result = sandbox.run(job)
    return result, read_verdicts(result, secret, [TASK])[TASK]


def test_an_honest_program_passes(isolating_sandbox: Sandbox) -> None:
    assert _score(isolating_sandbox, RIGHT) == 1.0


def test_a_survivor_reading_and_racing_the_verdict_pipe_fails(isolating_sandbox: Sandbox,
                                                              token: str) -> None:
    """(a) The survivor reads /proc/1/fd/1 and every /proc/*/fd/{1,2} for the verdict line
    and writes forged "all pass" lines; the program is wrong, and slow enough (a pause in
    the first call) for the survivor to be in place when the harness writes. Its read
    races the host's, so it runs three times (against a harness that trusted any line
    with the job's nonce, with bwrap as an ordinary user, it won most runs)."""
    program = (f"# {token}\n" + SURVIVOR + "leave_survivor(8.0)\nFIRST = [1]\n"
               "def add(x, y):\n    if FIRST:\n        FIRST.pop()\n        time.sleep(0.5)\n"
               "    return x - y\n")
    assert [_score(isolating_sandbox, program) for _ in range(3)] == [0.0] * 3
    assert host_processes_with(token) == []


def test_forged_lines_on_every_stdout_it_can_name_fail(isolating_sandbox: Sandbox) -> None:
    """(b) Forged lines on its inherited fds, /dev/stdout, /proc/self/fd/1, the harness's
    /proc/<ppid>/fd/1 and the init's /proc/1/fd/1, at import and in every call."""
    program = (FORGER + STDOUT_PATHS + "write_everywhere(guesses())\n"
               "def add(x, y):\n    write_everywhere(guesses())\n    return x - y\n")
    assert _score(isolating_sandbox, program) == 0.0


def test_a_replayed_passing_line_of_another_job_fails(isolating_sandbox: Sandbox) -> None:
    """(d) The real, authenticated line of a job where ``add`` passed, replayed by a wrong
    program of the next job (directly and by a survivor), counts for nothing there."""
    honest, verdict = _job(isolating_sandbox, RIGHT, secrets.token_hex(32))
    assert verdict.score == 1.0, honest
    replay = [b"\n" + line + b"\n" for line in honest.stdout.split(b"\n") if b'"pass"' in line]
    assert replay, honest.stdout
    program = (SURVIVOR + STDOUT_PATHS + f"REPLAY = {replay!r}\n"
               "leave_survivor(6.0, REPLAY)\nwrite_everywhere(REPLAY)\nFIRST = [1]\n"
               "def add(x, y):\n    write_everywhere(REPLAY)\n    if FIRST:\n"
               "        FIRST.pop()\n        time.sleep(0.5)\n    return x - y\n")
    result, verdict = _job(isolating_sandbox, program, secrets.token_hex(32))
    assert verdict.score == 0.0, result


#: Hunts the job's secret: the hidden file wherever it could be, the environ, cmdline and
#: open files of every process, and the readable memory of every process. Knowing only the
#: secret's hash, it recognises the secret among the 64-hex-digit strings it reads.
KEY_HUNT = r"""
import glob, hashlib, os, re, time
HEX = re.compile(rb"[0-9a-f]{64}")
def secret_in(data):
    return next((m.decode() for m in HEX.findall(data)
                 if hashlib.sha256(m).hexdigest() == WANTED), None)
def read(path, limit=1 << 22):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(fd, limit)
    except OSError:
        return b""
    finally:
        os.close(fd)
def memory(pid, budget):
    chunks = []
    try:
        maps = open("/proc/%s/maps" % pid).read().splitlines()
        mem = open("/proc/%s/mem" % pid, "rb", buffering=0)
    except OSError:
        return b""
    with mem:
        for line in maps:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if "r" not in perms or end - start > budget:
                continue
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
                budget -= end - start
            except (OSError, ValueError, OverflowError):
                pass
    return b"".join(chunks)
def hunt(deadline):
    me = str(os.getpid())
    pids = [pid for pid in os.listdir("/proc") if pid.isdigit() and pid != me]
    paths = ["hidden.json", "../hidden.json", "/work/hidden.json", "/tmp/hidden.json",
             *glob.glob("/tmp/*/hidden.json"), *glob.glob("/proc/*/cwd/hidden.json"),
             *glob.glob("/proc/*/root/work/hidden.json")]
    for pid in pids:
        paths += ["/proc/%s/%s" % (pid, name) for name in ("environ", "cmdline")]
        paths += glob.glob("/proc/%s/fd/*" % pid)
    for path in paths:
        found = secret_in(read(path))
        if found or time.monotonic() > deadline:
            return found
    for pid in pids:
        found = secret_in(memory(pid, 96 << 20))
        if found or time.monotonic() > deadline:
            return found
    return None
"""

#: With the secret, the survivor signs a passing verdict exactly as the harness would (with
#: the harness's own source, which is public) and writes it everywhere, after "LEAKED".
KEY_SURVIVOR = r"""
def forge_with(secret):
    harness = {"__name__": "not_main"}
    exec(HARNESS_SOURCE, harness)
    verdicts = {TASK: {"verdict": "pass", "detail": ""}}
    return [b"\nLEAKED\n", harness["verdict_line"](secret, [TASK], verdicts)]
def key_survivor(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        secret = hunt(deadline)
        if secret:
            write_paths(forge_with(secret))
        time.sleep(0.05)
"""


def test_hunting_the_secret_finds_nothing(isolating_sandbox: Sandbox) -> None:
    """(c) At import and from a survivor: hidden.json, environ, cmdline, open files and the
    memory of every process it can read. Were the secret found, the program would be right,
    and the survivor would sign a passing verdict and print LEAKED."""
    secret = secrets.token_hex(32)
    wanted = hashlib.sha256(secret.encode()).hexdigest()
    program = (
        f"WANTED = {wanted!r}\nTASK = {TASK!r}\n"
        f"HARNESS_SOURCE = {harness_source().decode()!r}\n"
        + KEY_HUNT + STDOUT_PATHS + KEY_SURVIVOR
        + "LEAKED = hunt(time.monotonic() + 2.0)\n"
        + "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        + "        os.closerange(3, 1024)\n        key_survivor(4.0)\n"
        + "    os._exit(0)\nos.wait()\nFIRST = [1]\n"
        + "def add(x, y):\n    if FIRST:\n        FIRST.pop()\n        time.sleep(1.0)\n"
        + "    return x + y if LEAKED else x - y\n")
    result, verdict = _job(isolating_sandbox, program, secret)
    assert verdict.score == 0.0, result
    assert b"LEAKED" not in result.stdout + result.stderr


@pytest.mark.parametrize("where", ["at import", "in the call"])
def test_garbage_on_the_pipes_neither_hides_nor_fakes_a_verdict(isolating_sandbox: Sandbox,
                                                                where: str) -> None:
    """Garbage a program writes to the pipes it can reach (a partial line, no newline)
    does not hide an honest program's verdict, nor make a wrong one pass."""
    garbage = "write_paths([b'{\"x\": 1} garbage \\x00'])\n"
    right = (STDOUT_PATHS + garbage + RIGHT if where == "at import" else
             STDOUT_PATHS + "def add(x, y):\n    " + garbage + "    return x + y\n")
    assert _score(isolating_sandbox, right) == 1.0
    assert _score(isolating_sandbox, STDOUT_PATHS + garbage + WRONG) == 0.0
