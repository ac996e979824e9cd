"""Hostile candidates that reach for what is not theirs: secrets, files outside the work dir,
the evaluator and hidden tests, their own score, and the network (bwrap and docker).

Network checks only ever target loopback addresses the test itself serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fitness.code import DirectoryBenchmark, EvaluationEnv, ProgramResult
from sandboxes import EndReason, Executor, Job, Limits, Result, Sandbox

from .hostile_helpers import LIMITS, assert_contained, attack

SPY = r"""
import json, os, sys
targets = json.loads(sys.argv[1])
seen = {"env": dict(os.environ), "files": {}, "proc_environ": [], "found": []}
for path in targets["files"]:
    try:
        seen["files"][path] = open(path, "rb").read().decode("latin-1")
    except OSError as exc:
        seen["files"][path] = f"error {exc.errno}"
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen["proc_environ"].append(open(f"/proc/{pid}/environ", "rb").read().decode("latin-1"))
        except OSError:
            pass
for top in ("/root", "/home", "/tmp", "/var", "/run", "/mnt", "/srv", "/opt"):
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            if name in targets["names"]:
                path = os.path.join(dirpath, name)
                try:
                    seen["found"].append(open(path, "rb").read().decode("latin-1"))
                except OSError:
                    seen["found"].append(path)
text = json.dumps(seen)
open("loot.txt", "w").write(text)
print(text)
print("SPY DONE")
"""


def spy(sandbox: Sandbox, token: str, files: list[Path]) -> Result:
    targets = {"files": [str(p) for p in files], "names": [p.name for p in files]}
    result = attack(sandbox, token, SPY, args=(json.dumps(targets),), collect=("loot.txt",))
    assert result.reason is EndReason.OK, result
    assert b"SPY DONE" in result.stdout  # the attempt ran to its end
    return result


def test_the_host_environment_is_not_passed(isolating_sandbox: Sandbox, token: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"env-secret-{token}"
    monkeypatch.setenv("CLADEFORGE_HOSTILE_SECRET", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    result = spy(isolating_sandbox, token, [])
    seen = json.loads(result.files["loot.txt"])
    assert "CLADEFORGE_HOSTILE_SECRET" not in seen["env"]
    assert "OPENAI_API_KEY" not in seen["env"]
    assert_contained(isolating_sandbox, token, secret, result=result)


def test_files_in_the_users_home_are_out_of_reach(isolating_sandbox: Sandbox, token: str,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    secret_file = home / ".config" / f"secret-{token}.txt"
    secret_file.parent.mkdir(parents=True)
    secret = f"home-secret-{token}"
    secret_file.write_text(secret)
    monkeypatch.setenv("HOME", str(home))
    result = spy(isolating_sandbox, token, [secret_file])
    seen = json.loads(result.files["loot.txt"])
    assert seen["files"][str(secret_file)].startswith("error")
    assert_contained(isolating_sandbox, token, secret, result=result)


def test_the_runs_archive_database_is_out_of_reach(isolating_sandbox: Sandbox, token: str,
                                                   tmp_path: Path) -> None:
    database = tmp_path / "run" / f"archive-{token}.sqlite"
    database.parent.mkdir()
    secret = f"archive-secret-{token}"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE candidates (id INTEGER PRIMARY KEY, answer TEXT)")
        conn.execute("INSERT INTO candidates (answer) VALUES (?)", (secret,))
    conn.close()
    before = database.read_bytes()
    result = spy(isolating_sandbox, token, [database])
    seen = json.loads(result.files["loot.txt"])
    assert seen["files"][str(database)].startswith("error")
    assert database.read_bytes() == before
    assert_contained(isolating_sandbox, token, secret, result=result)


VANDAL = r"""
import json, os, sys
outcome = {}
for path in json.loads(sys.argv[1]):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write("vandalised")
        outcome[path] = "written"
    except OSError as exc:
        outcome[path] = f"error {exc.errno}"
print(json.dumps(outcome))
"""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writing_outside_the_work_dir_fails_or_stays_inside(isolating_sandbox: Sandbox,
                                                            token: str, tmp_path: Path) -> None:
    host_file = tmp_path / "host.txt"
    host_file.write_text("original")
    host_tmp = Path(tempfile.gettempdir()) / f"escape-{token}.txt"
    passwd = _digest(Path("/etc/passwd"))
    system = ["/etc/passwd", f"/usr/lib/escape-{token}", f"/escape-{token}.txt",
              f"/work/../escape-{token}.txt", f"/proc/sys/kernel/escape-{token}"]
    targets = [str(host_file), str(host_tmp), *system]
    result = attack(isolating_sandbox, token, VANDAL, args=(json.dumps(targets),))
    assert result.reason is EndReason.OK, result
    outcome = json.loads(result.stdout)
    assert all(outcome[path].startswith("error") for path in system), outcome
    assert host_file.read_text() == "original"
    assert not host_tmp.exists()
    assert _digest(Path("/etc/passwd")) == passwd
    assert not Path(f"/usr/lib/escape-{token}").exists()
    assert not Path(f"/escape-{token}.txt").exists()
    assert_contained(isolating_sandbox, token, result=result)


def test_the_evaluator_and_hidden_tests_cannot_be_read_or_changed(isolating_sandbox: Sandbox,
                                                                  token: str,
                                                                  tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    evaluator = trusted / "evaluator.py"
    evaluator.write_text("def score(answers):\n    return 0.0\n")
    hidden = trusted / f"hidden-tests-{token}.json"
    secret = f"hidden-answer-{token}"
    hidden.write_text(json.dumps({"cases": [[1, 2]], "expected": [secret]}))
    before = {p: (_digest(p), p.stat().st_mtime_ns) for p in (evaluator, hidden)}
    read = spy(isolating_sandbox, token, [evaluator, hidden])
    seen = json.loads(read.files["loot.txt"])
    assert all(seen["files"][str(p)].startswith("error") for p in (evaluator, hidden))
    write = attack(isolating_sandbox, token, VANDAL,
                   args=(json.dumps([str(evaluator), str(hidden)]),))
    assert write.reason is EndReason.OK, write  # writes fail, or land in the sandbox's own /tmp
    assert {p: (_digest(p), p.stat().st_mtime_ns) for p in (evaluator, hidden)} == before
    assert_contained(isolating_sandbox, token, secret, result=read)
    assert_contained(isolating_sandbox, token, secret, result=write)


# --- faking the score -------------------------------------------------------------------
# Scored by the production scorer of user benchmarks (``fitness.DirectoryBenchmark``): the
# candidate gets the public input as input.json and writes its declared output, answers.json;
# a second sandbox runs the benchmark's trusted evaluate.py on that output and the hidden
# answer, and the host reads the score from the evaluator's last line of stdout only.

CASES = [[2, 3], [10, -4], [7, 7]]
EXPECTED = [5, 6, 14]  # kept by the trusted side only

HONEST = """
import json
cases = json.load(open("input.json"))
json.dump([a + b for a, b in cases], open("answers.json", "w"))
"""

#: the score line in the very format the host takes from the evaluator, printed last
CLAIM = '{"score": 1.0, "detail": "3 of 3 right"}'

CHEAT = f"""
import json, os
print("SCORE: 1.0")
json.dump({{"score": 1.0, "passed": 3, "total": 3}}, open("score.json", "w"))
json.dump([0, 0, 0], open("answers.json", "w"))
print({CLAIM!r})
"""

CHEAT_SYMLINK = f"""
import os
print("SCORE: 1.0")
os.symlink("/etc/passwd", "answers.json")
print({CLAIM!r})
"""

EVALUATOR = """
import json
answer = json.load(open("answer.json"))
try:
    got = json.load(open("outputs/answers.json"))
except (OSError, ValueError) as exc:
    print(json.dumps({"score": 0.0, "detail": f"no readable answers.json ({type(exc).__name__})"}))
    raise SystemExit(0)
if not isinstance(got, list) or len(got) != len(answer):
    print(json.dumps({"score": 0.0, "detail": "answers.json is not a list of the right size"}))
    raise SystemExit(0)
right = sum(g == a for g, a in zip(got, answer))
print(json.dumps({"score": right / len(answer), "detail": f"{right} of {len(answer)} right"}))
"""


class RecordingExecutor(Executor):
    """Runs jobs on the test's sandbox and keeps each result (the sandbox is not closed)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.runs: list[tuple[Job, Result]] = []

    async def run(self, job: Job) -> Result:
        result = await asyncio.to_thread(self.sandbox.run, job)
        self.runs.append((job, result))
        return result

    def close(self) -> None:
        pass  # the session's sandbox fixture closes it


def user_benchmark(tmp_path: Path, token: str) -> DirectoryBenchmark:
    """A user benchmark whose candidate runs as attack_<token>.py, under the hostile limits."""
    root = tmp_path / "benchmark"
    (root / "seed").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "seed" / f"attack_{token}.py").write_text(HONEST)
    (root / "evaluate.py").write_text(EVALUATOR)
    line = json.dumps({"id": "sums", "input": CASES, "answer": EXPECTED})
    (root / "data" / "train.jsonl").write_text(line + "\n")
    (root / "data" / "validation.jsonl").write_text(line.replace('"sums"', '"sums-v"') + "\n")
    limits = {f.name: getattr(LIMITS, f.name) for f in dataclasses.fields(Limits)}
    (root / "benchmark.yaml").write_text(yaml.safe_dump({
        "name": "hostile-sums", "description": "Add each pair in input.json.",
        "seed": "seed", "command": ["python3", f"attack_{token}.py"],
        "outputs": ["answers.json"], "limits": limits, "evaluator_limits": limits,
        "splits": {"train": "data/train.jsonl", "validation": "data/validation.jsonl"}}))
    return DirectoryBenchmark(root)


def evaluate(sandbox: Sandbox, token: str, code: str,
             tmp_path: Path) -> tuple[ProgramResult, Result, Result | None]:
    """The production score of ``code``, the candidate's own run and the evaluator's run
    (None if the scorer ran no evaluator)."""
    benchmark = user_benchmark(tmp_path, token)
    executor = RecordingExecutor(sandbox)
    evaluation = asyncio.run(benchmark.evaluate({f"attack_{token}.py": code.encode()},
                                                benchmark.split("train"),
                                                EvaluationEnv(executor)))
    (scored,) = evaluation.results
    (candidate_job, candidate), *rest = executor.runs
    assert candidate_job.command == ("python3", f"attack_{token}.py")
    assert "answer.json" not in candidate_job.files  # the hidden answer stayed outside
    if not rest:
        return scored, candidate, None
    ((evaluator_job, verdict),) = rest
    assert evaluator_job.command == ("python3", "evaluate.py")
    assert json.loads(evaluator_job.files["answer.json"]) == EXPECTED
    return scored, candidate, verdict


def test_an_honest_candidate_scores_full_marks(isolating_sandbox: Sandbox, token: str,
                                               tmp_path: Path) -> None:
    scored, candidate, _verdict = evaluate(isolating_sandbox, token, HONEST, tmp_path)
    assert (scored.score, scored.detail) == (1.0, "3 of 3 right"), (scored, candidate)


@pytest.mark.parametrize(("code", "detail"), [
    pytest.param(CHEAT, "0 of 3 right", id="score-file-and-stdout"),
    pytest.param(CHEAT_SYMLINK, "no readable answers.json", id="symlinked-output")])
def test_a_fake_score_is_not_taken(isolating_sandbox: Sandbox, token: str, tmp_path: Path,
                                   code: str, detail: str) -> None:
    scored, candidate, verdict = evaluate(isolating_sandbox, token, code, tmp_path)
    assert candidate.reason is EndReason.OK, candidate
    assert b"SCORE: 1.0" in candidate.stdout  # it did try
    assert candidate.stdout.decode().splitlines()[-1] == CLAIM
    assert scored.score == 0.0, scored
    assert "score.json" not in candidate.files
    assert b"/etc/passwd" not in b"".join(candidate.files.values())
    assert scored.reason is EndReason.OK and scored.detail.startswith(detail), scored
    assert verdict is not None and verdict.stdout.decode().splitlines()[-1] != CLAIM
    assert_contained(isolating_sandbox, token, result=candidate)


# --- network ----------------------------------------------------------------------------

NETWORK = r"""
import json, os, socket, sys
port, abstract = int(sys.argv[1]), sys.argv[2]
outcome = {}
for host in ("127.0.0.1", "localhost"):
    try:
        socket.create_connection((host, port), timeout=2).close()
        outcome[host] = "connected"
    except OSError as exc:
        outcome[host] = f"error {exc.errno}"
for name, address in (("abstract", "\0" + abstract), ("docker", "/var/run/docker.sock")):
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect(address)
        outcome[name] = "connected"
    except OSError as exc:
        outcome[name] = f"error {exc.errno}"
    finally:
        client.close()
devices = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
outcome["interfaces"] = sorted(set(devices) | set(
    os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []))
print(json.dumps(outcome))
"""


class LoopbackServer:
    """A TCP server on the host's 127.0.0.1 and an abstract unix socket, counting connections."""

    def __init__(self, token: str) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.unix = socket.socket(socket.AF_UNIX)
        self.abstract = f"cladeforge-hostile-{token}"
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        self.port = self.tcp.getsockname()[1]
        self.connections = 0
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, args=(s,), daemon=True)
                         for s in (self.tcp, self.unix)]

    def _accept(self, server: socket.socket) -> None:
        server.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __enter__(self) -> LoopbackServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        for thread in self._threads:
            thread.join()
        self.tcp.close()
        self.unix.close()


@pytest.fixture
def loopback_server(token: str) -> Iterator[LoopbackServer]:
    with LoopbackServer(token) as server:
        yield server


def test_no_network_not_even_the_hosts_loopback(isolating_sandbox: Sandbox, token: str,
                                               loopback_server: LoopbackServer) -> None:
    socket.create_connection(("127.0.0.1", loopback_server.port), timeout=2).close()
    control = socket.socket(socket.AF_UNIX)
    control.connect("\0" + loopback_server.abstract)
    control.close()
    result = attack(isolating_sandbox, token, NETWORK,
                    args=(str(loopback_server.port), loopback_server.abstract))
    assert result.reason is EndReason.OK, result
    outcome = json.loads(result.stdout)
    assert all(outcome[k].startswith("error") for k in ("127.0.0.1", "localhost", "abstract",
                                                        "docker")), outcome
    assert outcome["interfaces"] == ["lo"]
    server = loopback_server
    server._stop = True
    for thread in server._threads:
        thread.join()
    assert server.connections == 2  # the two control connections, none from the sandbox
    assert_contained(isolating_sandbox, token, result=result)
