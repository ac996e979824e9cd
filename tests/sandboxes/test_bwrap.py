"""The bubblewrap backend: what the command sees, the LLM socket, the tree kill, the fallback."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandboxes import (
    LLM_SOCKET,
    LLM_SOCKET_ENV,
    SANDBOX_UID,
    WORKDIR,
    BwrapSandbox,
    EndReason,
    Job,
    Limits,
    Sandbox,
    SandboxError,
)
from sandboxes._images import rootfs_path

LIMITS = Limits(memory_mb=128, pids=16, wall_seconds=5.0, output_bytes=1 << 16, workdir_mb=8)

LOOK = r"""
import ctypes, json, os, socket
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
def can_write(path):
    try:
        open(path, "w").close()
        return True
    except OSError:
        return False
open("given.txt", "a").write(" changed")
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "env": dict(os.environ),
    "top": sorted(os.listdir("/")), "hostname": socket.gethostname(),
    "caps": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip(),
    "write_root": can_write("/x"), "write_etc": can_write("/etc/x"),
    "write_tmp": can_write("/tmp/x"), "given": open("given.txt").read(),
    "owner": os.stat("given.txt").st_uid,
    "userns": ctypes.CDLL(None, use_errno=True).unshare(0x10000000),
}))
"""


@pytest.fixture(params=["host", "rootfs"])
def any_root(request: pytest.FixtureRequest, bwrap_sandbox: Sandbox) -> BwrapSandbox:
    """A bwrap sandbox over the host's system dirs, and one over the built root filesystem."""
    if request.param == "host":
        return BwrapSandbox(root=None)
    if not rootfs_path().is_dir():
        pytest.skip(f"needs the sandbox root filesystem at {rootfs_path()} (evolve sandbox build)")
    return BwrapSandbox(root=rootfs_path())


def test_the_command_sees_only_the_sandbox(any_root: BwrapSandbox,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLADEFORGE_HOST_ONLY", "host value")
    result = any_root.run(Job(command=["python3", "-c", LOOK], files={"given.txt": b"input"},
                              env={"GIVEN": "yes"}, limits=LIMITS, collect=["given.txt"]))
    assert result.reason is EndReason.OK, result
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"], seen["cwd"]) == (SANDBOX_UID, SANDBOX_UID, WORKDIR)
    assert seen["env"] == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORKDIR,
                           "LANG": "C.UTF-8", "GIVEN": "yes", "PWD": WORKDIR}  # bwrap sets PWD
    assert not {"root", "home", "run", "mnt", "sys"} & set(seen["top"])
    assert {"usr", "proc", "dev", "tmp", "work"} <= set(seen["top"])
    assert seen["hostname"] == "sandbox"
    assert int(seen["caps"], 16) == 0 and seen["nnp"] == "1"
    assert not seen["write_root"] and not seen["write_etc"] and seen["write_tmp"]
    assert seen["owner"] == SANDBOX_UID and seen["given"] == "input changed"
    assert seen["userns"] == -1  # no nested user namespaces
    assert result.files["given.txt"] == b"input changed"


def test_host_paths_are_not_there(bwrap_sandbox: Sandbox) -> None:
    paths = [os.getcwd(), "/root", "/home", tempfile.gettempdir() + "/pytest-of-root",
             os.path.dirname(os.__file__)]
    code = f"import json, os; print(json.dumps([os.path.exists(p) for p in {paths!r}]))"
    result = bwrap_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    visible = dict(zip(paths, json.loads(result.stdout), strict=True))
    assert not visible[os.getcwd()] and not visible["/root"] and not visible["/home"]
    assert not visible[tempfile.gettempdir() + "/pytest-of-root"]


@pytest.fixture
def llm_socket() -> Iterator[str]:
    """A unix socket answering b"pong", laid out like the gateway's (0711 dir, 0666 socket)."""
    directory = tempfile.mkdtemp(prefix="cladeforge-llm-test-")
    os.chmod(directory, 0o711)
    path = os.path.join(directory, "llm.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o666)
    server.listen()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.sendall(b"pong")
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()
    thread.join(timeout=5)
    os.unlink(path)
    os.rmdir(directory)


def test_the_llm_socket_is_mounted_and_named(bwrap_sandbox: Sandbox, llm_socket: str) -> None:
    code = ("import os, socket\n"
            f"path = os.environ['{LLM_SOCKET_ENV}']\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(path)\n"
            "print(path, s.recv(16).decode())")
    result = bwrap_sandbox.run(Job(command=["python3", "-c", code], llm_socket=llm_socket,
                                   limits=LIMITS))
    assert result.reason is EndReason.OK, result
    assert result.stdout.split() == [LLM_SOCKET.encode(), b"pong"]


DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "120", sys.argv[1]])
    os._exit(0)
print("left a daemon behind")
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "rlimits"])
def test_a_daemon_that_left_the_session_dies_with_the_run(bwrap_sandbox: Sandbox,
                                                          cgroups: bool) -> None:
    marker = uuid.uuid4().hex
    sandbox = BwrapSandbox(root=bwrap_sandbox.root, cgroups=cgroups)  # type: ignore[attr-defined]
    result = sandbox.run(Job(command=["python3", "-c", DAEMON, marker], limits=LIMITS))
    assert result.reason is EndReason.OK, result
    assert not _host_processes_with(marker)


@pytest.mark.parametrize(("code", "reason"), [
    ("hoard = []\nwhile True: hoard.append(b'x' * (8 << 20))", EndReason.OOM),
    ("import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)",
     EndReason.PIDS),
])
def test_without_cgroups_rlimits_still_contain(bwrap_sandbox: Sandbox, code: str,
                                               reason: EndReason) -> None:
    sandbox = BwrapSandbox(root=bwrap_sandbox.root, cgroups=False)  # type: ignore[attr-defined]
    result = sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    assert result.reason is reason, result
    assert "inferred" in result.detail


def test_a_setup_failure_is_an_error_result(bwrap_sandbox: Sandbox) -> None:
    result = bwrap_sandbox.run(Job(command=["true"], llm_socket="/no/such/llm.sock",
                                   limits=LIMITS))
    assert result.reason is EndReason.ERROR
    assert "bubblewrap could not set up the sandbox" in result.detail
    assert "/no/such/llm.sock" in result.detail
    missing = bwrap_sandbox.run(Job(command=["no-such-command"], limits=LIMITS))
    assert missing.reason is EndReason.ERROR and "no-such-command" in missing.detail


def test_a_failing_command_is_an_exit_not_an_error(bwrap_sandbox: Sandbox) -> None:
    result = bwrap_sandbox.run(Job(command=["python3", "-c", "raise SystemExit(1)"],
                                   limits=LIMITS))
    assert (result.reason, result.exit_code) == (EndReason.EXIT, 1)


def test_a_missing_bwrap_or_root_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="bubblewrap"):
        BwrapSandbox(bwrap="no-such-bwrap").run(Job(command=["true"]))
    with pytest.raises(SandboxError, match=r"incomplete: build it with sandboxes\.build_image"):
        BwrapSandbox(root=tmp_path / "missing").run(Job(command=["true"]))


def _host_processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
    return found


def test_concurrent_runs_are_independent(bwrap_sandbox: Sandbox) -> None:
    code = ("import os, sys, time\n"
            "open('mine.txt', 'w').write(sys.argv[1])\n"
            "time.sleep(0.3)\n"
            "print(sorted(os.listdir('.')), open('mine.txt').read())")
    jobs = [Job(command=["python3", "-c", code, str(i)], limits=LIMITS) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(bwrap_sandbox.run, jobs))
    for i, result in enumerate(results):
        assert result.reason is EndReason.OK, result
        assert result.stdout.decode().split() == ["['mine.txt']", str(i)]
