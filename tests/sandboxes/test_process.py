"""The process backend: limits and a fresh work dir, no isolation, and it says so."""

from __future__ import annotations

import json
import logging
import os
import tempfile

import pytest

from sandboxes import LLM_SOCKET_ENV, WORKDIR, EndReason, Job, Limits, ProcessSandbox, Sandbox
from sandboxes._cgroups import detect

LIMITS = Limits(memory_mb=128, pids=16, wall_seconds=5.0, output_bytes=1 << 16, workdir_mb=8)
SHOW = ("import json, os\n"
        "print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ),"
        " 'files': sorted(os.listdir('.'))}))")


def test_construction_warns_that_nothing_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sandboxes._process"):
        sandbox = ProcessSandbox()
    assert sandbox.isolated is False
    assert "no isolation" in caplog.text and "trusted code" in caplog.text


def test_runs_in_a_fresh_temp_dir_with_a_cleared_environment(
        process_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLADEFORGE_HOST_ONLY", "host value")
    job = Job(command=["python3", "main.py"], files={"main.py": SHOW.encode(), "in/x": b"1"},
              env={"GIVEN": "yes"}, llm_socket="/some/host/llm.sock", limits=LIMITS)
    result = process_sandbox.run(job)
    assert result.reason is EndReason.OK, result
    seen = json.loads(result.stdout)
    assert seen["cwd"] != WORKDIR and seen["cwd"].startswith(tempfile.gettempdir())
    assert seen["files"] == ["in", "main.py"]
    assert seen["env"]["HOME"] == seen["cwd"] and seen["env"]["GIVEN"] == "yes"
    assert seen["env"][LLM_SOCKET_ENV] == "/some/host/llm.sock"
    assert "CLADEFORGE_HOST_ONLY" not in seen["env"]
    assert set(seen["env"]) <= {"PATH", "HOME", "LANG", "GIVEN", LLM_SOCKET_ENV, "PWD"}
    assert not os.path.exists(seen["cwd"])


def test_output_files_come_back(process_sandbox: Sandbox) -> None:
    code = "open('out.txt', 'w').write('result')\nimport os; os.symlink('/etc/passwd', 'link')"
    result = process_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS,
                                     collect=["out.txt", "link", "missing"]))
    assert result.reason is EndReason.OK
    assert dict(result.files) == {"out.txt": b"result"}


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "rlimits"])
@pytest.mark.parametrize(("code", "reason"), [
    ("import sys; sys.exit(4)", EndReason.EXIT),
    ("hoard = []\nwhile True: hoard.append(b'x' * (8 << 20))", EndReason.OOM),
    ("while True: pass", EndReason.TIMEOUT),
    ("import sys\nwhile True: sys.stdout.write('x' * 4096)", EndReason.OUTPUT_LIMIT),
    ("open('f', 'wb').write(b'x' * (9 << 20))", EndReason.OUTPUT_LIMIT),
])
def test_limits_end_runs_with_their_reason(code: str, reason: EndReason, cgroups: bool) -> None:
    limits = Limits(memory_mb=128, pids=16, wall_seconds=2.0, output_bytes=1 << 16, workdir_mb=8)
    result = ProcessSandbox(cgroups=cgroups).run(Job(command=["python3", "-c", code],
                                                     limits=limits))
    assert result.reason is reason, result


def test_a_fork_bomb_meets_the_pids_limit(process_sandbox: Sandbox) -> None:
    host = detect()
    if "pids" not in host.controllers and os.geteuid() == 0:
        pytest.skip(f"needs a writable pids cgroup when run as root ({host.note})")
    code = "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)"
    result = process_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    assert result.reason is EndReason.PIDS, result


def test_a_missing_command_is_an_error(process_sandbox: Sandbox) -> None:
    result = process_sandbox.run(Job(command=["no-such-command-here"], limits=LIMITS))
    assert result.reason is EndReason.ERROR
