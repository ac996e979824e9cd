"""Nothing crosses between candidates, whatever kernel facility they use; no reach into others.

Each attack leaves something behind (a POSIX message queue, System V objects,
a kernel key, a file in every place it can write, a process holding an
abstract socket), and the next candidates in the same sandbox (for docker:
every warm container of the pool) and a candidate running at the same time
look for it and find nothing. The system-call policy (``sandboxes._seccomp``)
is checked call by call, and what a candidate can see of the host through
its processes' command lines. Runs on every isolating configuration (bwrap as
root and as an ordinary user, docker warm and cold).
"""

from __future__ import annotations

import json
import platform
import threading
import time
from dataclasses import replace

import pytest

from sandboxes import EndReason, Job, Result, Sandbox

from .hostile_helpers import LIMITS, PROBES, assert_contained

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the probes name x86-64 system call numbers")

PRELUDE = r"""
import ctypes, errno, json, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
TOKEN = sys.argv[1]
KEY = int(TOKEN[:7], 16)  # a System V key derived from the token
def call(number, *args):
    result = libc.syscall(number, *args)
    return result, (ctypes.get_errno() if result < 0 else 0)
def errname(code):
    return errno.errorcode.get(code, str(code))
"""

# Each technique: code that leaves something (prints what it managed), code that looks for it
# (prints a JSON list of what it found; [] is clean).
LEAVE = {
    "posix-mqueue": r"""
rt = ctypes.CDLL("librt.so.1", use_errno=True)
fd = rt.mq_open(f"/cf{TOKEN}".encode(), os.O_CREAT | os.O_RDWR, 0o666, None)
print("mq_open", fd, rt.mq_send(fd, b"secret", 6, 0) if fd >= 0 else errname(ctypes.get_errno()))
""",
    "sysv-ipc": r"""
print("shmget", call(29, KEY, 4096, 0o1666))      # IPC_CREAT | 0666
print("msgget", call(68, KEY, 0o1666))
print("semget", call(64, KEY, 1, 0o1666))
""",
    "kernel-keyrings": r"""
for ring in (-4, -3, -5):  # user, session, user-session keyrings
    print("add_key", ring, call(248, b"user", f"cf{TOKEN}".encode(), b"secret", 6, ring))
print("persistent", call(250, 22, -1, -4))  # KEYCTL_GET_PERSISTENT
""",
    "every-writable-place": r"""
written = []
for top, dirs, names in os.walk("/", topdown=True):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    if os.access(top, os.W_OK | os.X_OK):
        try:
            with open(os.path.join(top, f"cf{TOKEN}"), "w") as handle:
                handle.write("secret")
            written.append(top)
        except OSError:
            pass
print("written", written)
""",
    "surviving-socket-holder": r"""
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(f"\0cf{TOKEN}")
        server.listen(1)
        time.sleep(120)
    os._exit(0)
time.sleep(0.3)
print("listening")
""",
}

LOOK = r"""
found = []
rt = ctypes.CDLL("librt.so.1", use_errno=True)
if rt.mq_open(f"/cf{TOKEN}".encode(), os.O_RDONLY, 0, None) >= 0:
    found.append("posix message queue")
SYSV = (("shm", 29, (KEY, 0, 0)), ("msg", 68, (KEY, 0)), ("sem", 64, (KEY, 0, 0)))
for name, number, args in SYSV:
    if call(number, *args)[0] >= 0:
        found.append(f"sysv {name}")
for ring in (-4, -3, -5):
    if call(250, 10, ring, b"user", f"cf{TOKEN}".encode(), 0)[0] >= 0:  # KEYCTL_SEARCH
        found.append(f"key in keyring {ring}")
for top, dirs, names in os.walk("/", topdown=True):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    if f"cf{TOKEN}" in names:
        found.append(os.path.join(top, f"cf{TOKEN}"))
probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    probe.connect(f"\0cf{TOKEN}")
    found.append("abstract socket")
except OSError:
    pass
print(json.dumps(found))
"""


#: Walking the whole file system takes longer than the hostile suite's 4 s.
WALK_LIMITS = replace(LIMITS, wall_seconds=30.0)


def _run(sandbox: Sandbox, token: str, code: str) -> Result:
    return sandbox.run(Job(command=["python3", "-c", PRELUDE + code, token], limits=WALK_LIMITS))


def _look(sandbox: Sandbox, token: str) -> list[str]:
    result = _run(sandbox, token, LOOK)
    assert result.reason is EndReason.OK, result
    return json.loads(result.stdout)


@pytest.mark.parametrize("technique", sorted(LEAVE))
def test_nothing_a_candidate_leaves_reaches_the_next(isolating_sandbox: Sandbox, token: str,
                                                    technique: str) -> None:
    result = _run(isolating_sandbox, token, LEAVE[technique])
    assert result.reason is EndReason.OK, result
    if technique == "kernel-keyrings":  # refused outright by the seccomp policy: EPERM
        assert all(line.endswith(b"(-1, 1)") for line in result.stdout.splitlines()), result
    for _ in range(PROBES):  # more probes than warm containers: each container is seen
        assert _look(isolating_sandbox, token) == []
    assert_contained(isolating_sandbox, token, result=result)


def test_a_concurrent_candidate_sees_nothing(isolating_sandbox: Sandbox, request, token: str
                                             ) -> None:
    """One candidate leaves everything at once and stays alive; another, running at the same
    time (as the same host user for bwrap), looks for it."""
    other = isolating_sandbox
    if hasattr(isolating_sandbox, "server_pid"):  # the ordinary-user server runs one job at once
        from .user_sandbox import UserBwrapSandbox

        other = UserBwrapSandbox()
        request.addfinalizer(other.close)
    leave = "".join(LEAVE[k] for k in sorted(LEAVE)) + "time.sleep(3)\n"
    left: dict[str, object] = {}
    thread = threading.Thread(target=lambda: left.update(
        result=_run(isolating_sandbox, token, leave)))
    thread.start()
    time.sleep(1.5)
    try:
        assert _look(other, token) == []
    finally:
        thread.join()
    result = left["result"]
    assert result.reason is EndReason.OK, result  # type: ignore[union-attr]
    assert b"listening" in result.stdout  # type: ignore[union-attr]


# --- the system-call policy -------------------------------------------------------------------

REFUSED = {  # name: (number, arguments); each must fail with EPERM (clone3: ENOSYS)
    "ptrace(ATTACH, 1)": (101, (16, 1, 0, 0)),
    "ptrace(TRACEME)": (101, (0, 0, 0, 0)),
    "process_vm_readv(1)": (310, (1, 0, 0, 0, 0, 0)),
    "pidfd_getfd": (438, (0, 0, 0)),
    "kcmp": (312, (1, 1, 0, 0, 0)),
    "io_uring_setup": (425, (8, 0)),
    "keyctl": (250, (0, -3, 0)),
    "add_key": (248, (b"user", b"k", b"v", 1, -3)),
    "request_key": (249, (b"user", b"k", None, 0)),
    "personality(ADDR_NO_RANDOMIZE)": (135, (0x0040000,)),
    "unshare(CLONE_NEWUSER)": (272, (0x10000000,)),
    "unshare(CLONE_NEWNS)": (272, (0x00020000,)),
    "setns": (308, (0, 0)),
    "mount": (165, (b"none", b"/tmp", b"tmpfs", 0, None)),
    "umount2": (166, (b"/work", 2)),
    "pivot_root": (155, (b"/tmp", b"/tmp")),
    "chroot": (161, (b"/tmp",)),
    "bpf": (321, (0, 0, 0)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "userfaultfd": (323, (0,)),
    "init_module": (175, (0, 0, b"")),
    "finit_module": (313, (0, b"", 0)),
    "swapon": (167, (b"/tmp/x", 0)),
    "reboot": (169, (0, 0, 0, 0)),
    "acct": (163, (None,)),
    "sethostname": (170, (b"x", 1)),
    "clone(CLONE_NEWNET)": (56, (0x40000000 | 17, 0, 0, 0, 0)),
    "clone3": (435, (0, 0)),
}

PROBE_CALLS = r"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, (number, args) in CALLS.items():
    result = libc.syscall(number, *args)
    out[name] = errno.errorcode.get(ctypes.get_errno(), "?") if result < 0 else f"returned {result}"
print(json.dumps(out))
"""


def test_the_syscall_policy_refuses_reaching_out(isolating_sandbox: Sandbox) -> None:
    code = f"CALLS = {REFUSED!r}\n" + PROBE_CALLS
    result = isolating_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    assert result.reason is EndReason.OK, result
    seen = json.loads(result.stdout)
    expected = {name: "ENOSYS" if name == "clone3" else "EPERM" for name in REFUSED}
    assert seen == expected


def test_a_foreign_abi_is_outside_the_policy(isolating_sandbox: Sandbox) -> None:
    """The 32-bit system-call entry (int 0x80) bypasses no rule: the call fails or kills."""
    code = r"""
import ctypes, mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))  # mov eax, 20 (getpid); int 0x80; ret
address = ctypes.addressof(ctypes.c_char.from_buffer(page))
print("returned", ctypes.CFUNCTYPE(ctypes.c_int)(address)())
"""
    result = isolating_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    answer = result.stdout.split()[-1:] if b"returned" in result.stdout else [b"-1"]
    assert int(answer[0]) < 0, result  # getpid through int 0x80 did not run


def test_processes_show_no_host_path(isolating_sandbox: Sandbox) -> None:
    """Command lines inside the sandbox (bwrap's init included) name no host directory."""
    code = r"""
import json, os
lines = {}
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            lines[pid] = open(f"/proc/{pid}/cmdline", "rb").read().decode("latin-1")
        except OSError:
            pass
print(json.dumps(lines))
"""
    result = isolating_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    assert result.reason is EndReason.OK, result
    for cmdline in json.loads(result.stdout).values():
        for host_path in ("cladeforge-run-", "cladeforge-user-", "/root", "/.cache", "/tmp/"):
            assert host_path not in cmdline, cmdline


def test_no_process_in_the_sandbox_holds_a_host_channel(isolating_sandbox: Sandbox) -> None:
    """Every descriptor a candidate can reach through /proc (bwrap's init included) is the
    job's own stdio or /dev/null, or an eventfd: no status pipe, memory file, socket or host
    file that a candidate could read or write to reach past its job."""
    code = r"""
import json, os
me, held = os.getpid(), {}
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != me:
        try:
            held[pid] = {fd: os.readlink(f"/proc/{pid}/fd/{fd}")
                         for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            pass
print(json.dumps({"held": held, "mine": {fd: os.readlink(f"/proc/self/fd/{fd}")
                                          for fd in ("0", "1", "2")}}))
"""
    result = isolating_sandbox.run(Job(command=["python3", "-c", code], limits=LIMITS))
    assert result.reason is EndReason.OK, result
    seen = json.loads(result.stdout)
    allowed = set(seen["mine"].values()) | {"/dev/null", "anon_inode:[eventfd]"}
    for pid, fds in seen["held"].items():
        assert set(fds.values()) <= allowed, (pid, fds)
