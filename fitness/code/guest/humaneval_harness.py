"""Runs inside a test sandbox: HumanEval's hidden tests against candidate programs.

Trusted code (standard library only, Python 3.8+). ``python3 -I humaneval_harness.py
HIDDEN.json`` reads the problems (task id, prompt, entry point, hidden test and
the candidate's program text) and the job's secret, deletes the file, makes
this process undumpable and the reaper of every orphan below it, and then, one
problem at a time:

* starts the program in a separate child process (``--serve`` mode of this very
  source, run from memory with ``-c``) in a fresh temp dir, in its own session,
  with stdin and stderr on /dev/null and two private pipes as its only channel;
* runs the test's ``check(candidate)`` here, in this process, with
  ``candidate`` a proxy that sends ``repr((args, kwargs))`` to the child and
  parses the child's answer with ``ast.literal_eval`` (only plain literals
  come back: no object of the candidate's making ever reaches ``check``);
* passes the problem only when ``check`` returned and every call was answered
  with a value in time. A dead child, a timeout, an exception of the
  candidate, an unparseable or oversized answer each fail the problem;
* kills every process the program left behind (its session, then every orphan,
  which the kernel hands to this process, see ``end_stragglers``).

At the end, with no process of any program left that it can find, it writes ONE
line to its stdout (``verdict_line``): a tag naming the job, an HMAC-SHA256 of
the payload, and the payload, JSON ``{"job": tag, "task_ids": [...], "verdicts":
{task_id: {"verdict": "pass"|"fail"|"timeout"|"exit"|"error", "detail": ...}}}``.
The key is the job's secret, which is never printed and which no program can
read: the file is gone before any child starts, and this process's memory is
closed to its children (``_make_undumpable``). So a program may read the line,
copy it or write anything next to it, but the host believes only a line whose
MAC verifies with this job's secret.
"""

import ast
import hashlib
import hmac
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

_HEADER = struct.Struct(">I")
_PR_GET_DUMPABLE, _PR_SET_DUMPABLE, _PR_SET_CHILD_SUBREAPER = 3, 4, 36
#: the longest detail of a verdict, in characters
_DETAIL_CHARS = 300
#: what each HMAC of the job's secret is for (domain separation of the tag and the MAC)
TAG_LABEL, MAC_LABEL = b"cladeforge humaneval job tag", b"cladeforge humaneval verdict\n"


class CandidateFailure(Exception):
    """The candidate did not answer a call with a value: ``verdict`` and ``detail`` say why."""

    def __init__(self, verdict, detail):
        Exception.__init__(self, detail)
        self.verdict = verdict
        self.detail = detail


# -- framing (both sides) --------------------------------------------------------------------

def _send(fd, payload, deadline=None):
    data = _HEADER.pack(len(payload)) + payload
    while data:
        if deadline is not None:
            _wait(fd, deadline, write=True)
        written = os.write(fd, data)
        data = data[written:]


def _receive(fd, limit, deadline=None):
    """One frame, or None at end of file (the other side is gone)."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise CandidateFailure("fail", f"the answer is larger than {limit} bytes")
    return _read_exactly(fd, size, deadline) if size else b""


def _read_exactly(fd, size, deadline):
    chunks, missing = [], size
    while missing:
        if deadline is not None:
            _wait(fd, deadline, write=False)
        chunk = os.read(fd, min(missing, 1 << 16))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _wait(fd, deadline, write):
    remaining = deadline - _now()
    if remaining > 0:
        ready = select.select([], [fd], [], remaining) if write else \
            select.select([fd], [], [], remaining)
        if ready[1] if write else ready[0]:
            return
    raise CandidateFailure("timeout", "timeout")


def _now():
    return time.monotonic()


# -- the child: import the program, answer calls ---------------------------------------------

def serve():
    """Child mode: fd 0 brings requests, fd 1 takes answers; the program sees neither."""
    requests, answers = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    try:  # be the one the kernel kills first when memory runs out
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    except OSError:
        pass
    first = _receive(requests, 1 << 26)
    if first is None:
        return
    program, entry_point = json.loads(first.decode("utf-8"))
    module = type(sys)("candidate")
    module.__file__ = os.path.join(os.getcwd(), "candidate.py")
    sys.modules["candidate"] = module
    try:
        exec(compile(program, module.__file__, "exec"), module.__dict__)
        function = getattr(module, entry_point)
    except BaseException as exc:  # the program's own failure, reported to the harness
        _send(answers, b"E" + _describe(exc))
        return
    _send(answers, b"R")
    while True:
        request = _receive(requests, 1 << 26)
        if request is None:
            return
        try:
            args, kwargs = ast.literal_eval(request.decode("utf-8"))
            answer = b"R" + repr(function(*args, **kwargs)).encode("utf-8", "replace")
        except BaseException as exc:
            answer = b"E" + _describe(exc)
        _send(answers, answer)


def _describe(exc):
    text = f"{type(exc).__name__}: {exc}"
    return text[:300].encode("utf-8", "replace")


# -- the harness side ------------------------------------------------------------------------

class Child:
    """One candidate program in its own process, called through ``call``."""

    def __init__(self, source, program, entry_point, deadline, max_answer_bytes):
        self.deadline = deadline
        self.max_answer_bytes = max_answer_bytes
        self.failure = None
        self.home = tempfile.mkdtemp(prefix="candidate-")
        request_r, self.requests = os.pipe()
        self.answers, answer_w = os.pipe()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.home,
               "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", source, "--serve"], stdin=request_r,
                stdout=answer_w, stderr=subprocess.DEVNULL, cwd=self.home, env=env,
                close_fds=True, start_new_session=True)
        except OSError as exc:  # e.g. the process limit, reached by an earlier program
            self.process = None
            self.close()
            raise CandidateFailure("error", f"cannot start the program: {exc}") from None
        finally:
            os.close(request_r)
            os.close(answer_w)
        self.program = json.dumps([program, entry_point]).encode("utf-8")

    def start(self):
        """Send the program; return once the child has imported it (raise if it could not)."""
        self._exchange(self.program, "at import")

    def call(self, *args, **kwargs):
        if self.failure is not None:
            raise self.failure
        request = repr((args, kwargs))
        try:
            same = ast.literal_eval(request) == (args, kwargs)
        except Exception:
            same = False
        if not same:
            self._fail(CandidateFailure("error", "unsupported argument: " + request[:100]))
        body = self._exchange(request.encode("utf-8"), "")
        try:
            return ast.literal_eval(body.decode("utf-8"))
        except Exception:
            shown = body[:100].decode("utf-8", "replace")
            self._fail(CandidateFailure("fail", f"the result is not a literal: {shown!r}"))

    def _exchange(self, request, when):
        try:
            _send(self.requests, request, self.deadline)
            answer = _receive(self.answers, self.max_answer_bytes, self.deadline)
        except CandidateFailure as failure:
            self._fail(failure)
        except OSError:  # a broken pipe: the child is gone
            answer = None
        if answer is None:
            self._fail(CandidateFailure("exit", ("the program exited " + when).strip()))
        if answer[:1] == b"E":
            self._fail(CandidateFailure("fail", (answer[1:].decode("utf-8", "replace") + " "
                                                 + when).strip()))
        if answer[:1] != b"R":
            self._fail(CandidateFailure("fail", "a malformed answer"))
        return answer[1:]

    def _fail(self, failure):
        self.failure = failure
        raise failure

    def close(self):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.process.wait()
        for fd in (self.requests, self.answers):
            os.close(fd)
        shutil.rmtree(self.home, ignore_errors=True)


def check_one(source, problem, check_seconds, max_answer_bytes):
    """The verdict on one problem: {"verdict": ..., "detail": ...}."""
    namespace = {"__name__": "humaneval_check"}
    try:  # trusted: the problem's own helpers (e.g. poly, encode_cyclic), then the test
        exec(compile(problem["prompt"], "prompt.py", "exec"), namespace)
        exec(compile(problem["test"], "test.py", "exec"), namespace)
        check = namespace["check"]
    except BaseException as exc:
        return {"verdict": "error", "detail": f"the hidden test does not load: {exc}"}
    child = None
    try:
        child = Child(source, problem["program"], problem["entry_point"],
                      _now() + check_seconds, max_answer_bytes)
        child.start()
        namespace[problem["entry_point"]] = child.call  # some checks call it by name
        check(child.call)
    except CandidateFailure as failure:
        return {"verdict": failure.verdict, "detail": failure.detail}
    except AssertionError:
        return {"verdict": "fail", "detail": "AssertionError"}
    except BaseException as exc:
        return {"verdict": "fail", "detail": _describe(exc).decode("utf-8")}
    finally:
        if child is not None:
            child.close()
    if child.failure is not None:  # a failure that check() swallowed
        return {"verdict": child.failure.verdict, "detail": child.failure.detail}
    return {"verdict": "pass", "detail": ""}


def _prctl(option, value):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")
    return libc


def _make_undumpable():
    """PR_SET_DUMPABLE 0: processes of the same uid can neither ptrace this one nor read
    its /proc/<pid>/mem, environ or fd entries. Raise if it cannot be done."""
    libc = _prctl(_PR_SET_DUMPABLE, 0)
    if libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError("the process is still dumpable")


def _become_subreaper():
    """PR_SET_CHILD_SUBREAPER: an orphan below this process (a program's double-forked
    process in its own session) becomes this process's child instead of going to the
    sandbox's init, so ``end_stragglers`` finds it. False where the kernel refuses."""
    try:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    except (OSError, AttributeError):
        return False
    return True


def _children():
    """The pids whose parent is this process (a scan of /proc/<pid>/stat)."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/" + name + "/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == me:
                found.append(int(name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def end_stragglers(seconds=2.0):
    """SIGKILL and reap every process left below this one; True once there is none.

    Only this process's own children are signalled: an unreaped child's pid cannot
    be reused, so nothing outside this process's tree is ever hit (with the
    ``process`` backend the harness runs as the host user). An orphan of a killed
    child becomes a child here (subreaper), so the loop ends with the whole tree.
    """
    deadline = _now() + seconds
    while True:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        if _now() > deadline:
            return False
        time.sleep(0.002)


def verdict_line(secret, task_ids, verdicts):
    """The authenticated line: tag, MAC and payload (see the module doc), in one line."""
    key = secret.encode("utf-8")
    tag = hmac.new(key, TAG_LABEL, hashlib.sha256).hexdigest()[:32]
    payload = json.dumps({"job": tag, "task_ids": list(task_ids), "verdicts": verdicts},
                         ensure_ascii=True, sort_keys=True).encode("ascii")
    mac = hmac.new(key, MAC_LABEL + payload, hashlib.sha256).hexdigest()
    # a leading newline: a partial line written earlier cannot run into this one
    return b"\n" + tag.encode("ascii") + mac.encode("ascii") + payload + b"\n"


def main(argv):
    if argv[1:] == ["--serve"]:
        serve()
        return 0
    with open(__file__) as handle:
        source = handle.read()
    path = argv[1]
    with open(path, "rb") as handle:
        hidden = json.loads(handle.read().decode("utf-8"))
    os.unlink(path)  # fail closed: no child starts while the tests and the secret are on disk
    _make_undumpable()
    _become_subreaper()
    secret = hidden.pop("secret")
    verdicts = {}
    for problem in hidden["problems"]:
        try:
            verdict = check_one(source, problem, hidden["check_seconds"],
                                hidden["max_answer_bytes"])
        except BaseException:  # a harness failure on one problem fails only that problem
            verdict = {"verdict": "error",
                       "detail": traceback.format_exc(limit=2)[-_DETAIL_CHARS:]}
        verdict["detail"] = str(verdict["detail"])[:_DETAIL_CHARS]
        verdicts[problem["task_id"]] = verdict
        end_stragglers()  # nothing of this program may touch the next one
    end_stragglers()
    line = verdict_line(secret, [p["task_id"] for p in hidden["problems"]], verdicts)
    while line:
        line = line[os.write(1, line):]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
