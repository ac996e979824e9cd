"""Running one command under limits and saying why it ended (shared by bwrap and process).

How each limit is enforced, and seen afterwards:

* **process tree**: the command starts in its own session and process group
  (``setsid``); with a cgroup it also joins the run's cgroup before it execs,
  so every descendant is in it, also one that calls ``setsid()`` again. The
  tree is killed with ``killpg`` plus SIGKILL to every pid in the cgroup (or,
  without a cgroup, every process of the session).
* **memory**: the cgroup's memory limit (swap included); an OOM kill is read
  from the cgroup → ``oom``. Fallback: ``RLIMIT_AS`` (allocations fail; an
  ``oom`` is inferred from ``MemoryError`` / ``Cannot allocate memory``), with
  ``RLIMIT_STACK`` at 1/32 of it (1 to 8 MB), as each thread reserves that much
  address space, and glibc kept to one malloc arena (``fallback_env``).
* **pids** (processes *and threads*): the cgroup's ``pids.max``; refused forks
  are read from ``pids.events`` → ``pids``. Fallback: ``RLIMIT_NPROC`` on top
  of what the user already runs, only when that user is not root (root ignores
  it).
* **cpus**: the cgroup's CFS quota; fallback none. ``RLIMIT_CPU`` (wall time ×
  cpus, rounded up, +1 s) is a backstop everywhere → ``timeout`` on SIGXCPU.
* **wall time**: the run is killed at ``wall_seconds`` → ``timeout``.
* **output**: stdout and stderr are read concurrently into ``CappedBuffer``s;
  once either passes ``output_bytes`` the tree is killed → ``output_limit``.
* **work dir**: see ``_host_dirs``; a full work dir or SIGXFSZ (``RLIMIT_FSIZE``
  = the work-dir limit, per file) → ``output_limit``. ``RLIMIT_CORE`` is 0.

A run that exits 0 is ``ok`` even if it met the memory or pids limit on the
way (the detail says so), but never when its output was cut: a full work dir
or a capped stream is ``output_limit`` whatever the exit code.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import resource
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._base import EndReason, Limits, Result
from ._cgroups import CgroupEvents, CgroupHost, RunCgroup, detect
from ._host_dirs import Workspace
from ._job_files import CappedBuffer

logger = logging.getLogger(__name__)

MB = 1 << 20
_CHUNK = 1 << 16
#: How long output is still read after the command exited and its tree was killed.
_DRAIN_SECONDS = 2.0
#: How long killed processes without a cgroup may take to die before it is logged.
_DEATH_SECONDS = 10
#: How often a plain (not tmpfs) work dir's size is checked while the command runs.
_SPACE_POLL_SECONDS = 0.1
#: The largest stack limit set with the address-space fallback (the usual default).
_STACK_MB = 8
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_OOM_HINTS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
_PIDS_HINTS = (b"Resource temporarily unavailable", b"can't start new thread")


@dataclass(frozen=True)
class Launch:
    """One command to start under ``limits``.

    ``argv``/``env``/``cwd``: what to run, its whole environment, its cwd.
    ``space``: the run's workspace (its size is checked during and after the run).
    ``run_as``: (uid, gid) to switch to after joining the cgroup (None keeps ours).
    ``extra_pids``: processes the launcher itself keeps (bwrap: 2) on top of ``limits.pids``.
    ``signal_exit_codes``: exit status 128+n means "killed by signal n" (bwrap reports so).
    ``pass_fds``: file descriptors the command inherits.
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    limits: Limits
    space: Workspace
    run_as: tuple[int, int] | None = None
    extra_pids: int = 0
    signal_exit_codes: bool = False
    pass_fds: tuple[int, ...] = ()


@dataclass(frozen=True)
class Observed:
    """What was seen of a finished run; ``classify`` turns it into a reason."""

    returncode: int | None
    limits: Limits
    stopped: str | None = None          # "timeout", "stdout", "stderr", "workdir": we killed it
    workdir_full: bool = False
    events: CgroupEvents = field(default_factory=CgroupEvents)
    controllers: frozenset[str] = frozenset()
    signal_exit_codes: bool = False
    stderr_tail: bytes = b""


def limits_enforcement(host: CgroupHost | None = None) -> str:
    """One line saying how limits are enforced on this machine (cgroups or rlimit fallback)."""
    host = host or detect()
    missing = [name for name in ("memory", "pids") if name not in host.controllers]
    if not missing:
        return f"limits via {host.note}; rlimits as backstop"
    fallback = {"memory": "RLIMIT_AS", "pids": "RLIMIT_NPROC (not for root)"}
    return f"{host.note}; fallback: " + ", ".join(f"{m} by {fallback[m]}" for m in missing)


def fallback_env(host: CgroupHost) -> dict[str, str]:
    """Environment a command needs on ``host``: with memory limited as address space, glibc's
    one malloc arena (each further arena reserves 64 MB of address space, so a few threads
    would use up a limit that stands in for memory)."""
    return {} if "memory" in host.controllers else {"MALLOC_ARENA_MAX": "1"}


#: A host without usable cgroups (forces the rlimit fallback).
NO_CGROUPS = CgroupHost(0, {}, "cgroups not used")


def run_limited(launch: Launch, host: CgroupHost | None = None) -> Result:
    """Run ``launch`` to its end under its limits; never raises for what the command does.

    ``host``: where to make the run's cgroup (default: ``detect()``;
    ``NO_CGROUPS`` forces rlimits only).
    """
    host = host or detect()
    limits = launch.limits
    group: RunCgroup | None = None
    if host.controllers:
        try:
            group = RunCgroup.create(host, limits.memory_mb, limits.pids + launch.extra_pids,
                                     limits.cpus)
        except OSError as exc:
            logger.warning("cannot create a cgroup for the run (%s); using rlimits only", exc)
    controllers = group.controllers if group else frozenset()
    start = time.monotonic()
    try:
        setup = _child_setup(group.procs_files() if group else [],
                             rlimits_for(limits, controllers, launch), launch.run_as)
        try:
            proc = subprocess.Popen(
                list(launch.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=launch.cwd, env=dict(launch.env),
                start_new_session=True, preexec_fn=setup, pass_fds=launch.pass_fds)
        except (OSError, subprocess.SubprocessError) as exc:
            return Result(EndReason.ERROR, None, b"", b"", {}, time.monotonic() - start,
                          f"could not start {launch.argv[0]!r}: {exc}")
        out, err, stopped = _watch(proc, launch, group, start)
        elapsed = time.monotonic() - start
        observed = Observed(
            returncode=proc.returncode, limits=limits, stopped=stopped,
            workdir_full=stopped is None and launch.space.full(),
            events=group.events() if group else CgroupEvents(), controllers=controllers,
            signal_exit_codes=launch.signal_exit_codes, stderr_tail=err.getvalue()[-4096:])
    finally:
        if group is not None:
            group.remove()
    reason, code, detail = classify(observed)
    return Result(reason, code, out.getvalue(), err.getvalue(), {}, elapsed, detail)


def rlimits_for(limits: Limits, controllers: frozenset[str],
                launch: Launch | None = None) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits of a run: always core, file size and CPU time; memory/nproc without cgroup."""
    cpu = math.ceil(limits.wall_seconds * max(1.0, limits.cpus)) + 1
    found = [(resource.RLIMIT_CORE, (0, 0)),
             (resource.RLIMIT_FSIZE, (limits.workdir_mb * MB, limits.workdir_mb * MB)),
             (resource.RLIMIT_CPU, (cpu, cpu + 2))]
    if "memory" not in controllers:
        found.append((resource.RLIMIT_AS, (limits.memory_mb * MB, limits.memory_mb * MB)))
        # each thread reserves RLIMIT_STACK of address space: a few threads must not use
        # up the limit that stands in for memory
        stack = min(_STACK_MB, max(1, limits.memory_mb // 32)) * MB
        found.append((resource.RLIMIT_STACK, (stack, stack)))
    uid = launch.run_as[0] if launch and launch.run_as else os.getuid()
    if "pids" not in controllers and uid != 0:
        extra = launch.extra_pids if launch else 0
        nproc = _tasks_of(uid) + limits.pids + extra
        found.append((resource.RLIMIT_NPROC, (nproc, nproc)))
    return found


def _tasks_of(uid: int) -> int:
    """How many threads ``uid`` runs now (RLIMIT_NPROC counts them all, system-wide)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


def _child_setup(procs: list[bytes], rlimits: list[tuple[int, tuple[int, int]]],
                 run_as: tuple[int, int] | None) -> Callable[[], None]:
    """The code run in the child between fork and exec: join cgroups, set rlimits, drop user.

    Only plain system calls, prepared in the parent (fork in a threaded program).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup() -> None:
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        for which, value in rlimits:
            resource.setrlimit(which, value)
        if run_as is not None:
            os.setgroups([])
            os.setresgid(run_as[1], run_as[1], run_as[1])
            os.setresuid(run_as[0], run_as[0], run_as[0])
        prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)  # after the uid change clears it

    return setup


def _watch(proc: subprocess.Popen[bytes], launch: Launch, group: RunCgroup | None,
           start: float) -> tuple[CappedBuffer, CappedBuffer, str | None]:
    """Read both streams until the command ends or a limit is reached; kill the tree; reap."""
    limits = launch.limits
    out, err = CappedBuffer(limits.output_bytes), CappedBuffer(limits.output_bytes)
    streams = {proc.stdout: ("stdout", out), proc.stderr: ("stderr", err)}
    sel = selectors.DefaultSelector()
    for stream, data in streams.items():
        assert stream is not None
        os.set_blocking(stream.fileno(), False)
        sel.register(stream, selectors.EVENT_READ, data)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, None)
    deadline, drain_until = start + limits.wall_seconds, None
    poll_space = not launch.space.mounted
    stopped: str | None = None
    try:
        while stopped is None:
            open_streams = [k for k in sel.get_map().values() if k.data is not None]
            if drain_until is not None and (not open_streams or time.monotonic() > drain_until):
                break
            if drain_until is None and _exited(proc.pid):
                _kill_tree(proc, group)  # the command is done: so is everything it started
                drain_until = time.monotonic() + _DRAIN_SECONDS
                continue
            now = time.monotonic()
            if drain_until is None and now >= deadline:
                stopped = "timeout"
                break
            wait = (drain_until or deadline) - now
            if pidfd is None or poll_space:
                wait = min(wait, _SPACE_POLL_SECONDS)
            for key, _ in sel.select(max(0.0, wait)):
                if key.data is None:
                    sel.unregister(key.fileobj)
                    continue  # the pidfd: _exited() sees it at the top of the loop
                name, buffer = key.data
                chunk = _read(key.fileobj.fileno())
                if chunk is None:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buffer.write(chunk)
                if buffer.overflowed:
                    stopped = name
                    break
            if stopped is None and poll_space and drain_until is None and launch.space.full():
                stopped = "workdir"
    finally:
        _kill_tree(proc, group)
        _reap(proc)
        sel.close()
        for stream in streams:
            assert stream is not None
            stream.close()
        if pidfd is not None:
            os.close(pidfd)
    return out, err, stopped


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _exited(pid: int) -> bool:
    """True once ``pid`` exited; it stays unreaped (a zombie keeps its process group id)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, _CHUNK)
    except BlockingIOError:
        return None


def _kill_tree(proc: subprocess.Popen[bytes], group: RunCgroup | None) -> None:
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: pgid == sid == pid
        group.kill()
    else:
        _kill_unconfined(proc.pid)


def _kill_unconfined(root: int) -> None:
    """SIGKILL ``root``, its descendants and every process of its session (no cgroup: this
    catches those that left the process group), then wait until they are gone.

    Descendants are found before anything dies (a dead parent's children move to
    another reaper). Waiting matters under bwrap: its namespace's processes die
    only after bwrap itself, and a result must not be returned while they run.
    Each process is signalled through a pidfd checked against the start time seen
    in the scan, so a pid reused meanwhile is never hit.
    """
    seen = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in seen.items():
        children.setdefault(parent, []).append(pid)
    members = {root}
    stack = [root]
    while stack:  # the descendants of root, iteratively
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members.add(child)
                stack.append(child)
    members.update(pid for pid, (_, session, _) in seen.items() if session == root)
    pidfds = []
    for pid in members:
        fd = _pidfd(pid)
        if fd is None:
            continue
        if pid in seen and _start_time(pid) != seen[pid][2]:
            os.close(fd)  # the pid now names another process
            continue
        pidfds.append(fd)
    try:
        for fd in pidfds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        deadline = time.monotonic() + _DEATH_SECONDS
        waiting = select.poll()  # a pidfd is readable once its process has exited
        for fd in pidfds:
            waiting.register(fd, select.POLLIN)
        left = len(pidfds)
        while left and (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in waiting.poll(remaining * 1000):
                waiting.unregister(fd)
                left -= 1
        if left:
            logger.error("%d process(es) of a run still alive %d s after SIGKILL",
                         left, _DEATH_SECONDS)
    finally:
        for fd in pidfds:
            os.close(fd)


def _process_table() -> dict[int, tuple[int, int, int]]:
    """Every visible process: pid → (parent pid, session id, start time)."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = _stat_fields(int(entry.name))
                table[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return table


def _start_time(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, …, starttime."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[1].split()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        logger.error("process %d did not die after SIGKILL; leaving it", proc.pid)


def classify(seen: Observed) -> tuple[EndReason, int | None, str]:
    """Reason, exit code (None when killed by a signal) and detail of a finished run."""
    limits, code, sig = seen.limits, seen.returncode, None
    if code is not None and code < 0:
        code, sig = None, -code
    elif code is not None and seen.signal_exit_codes and 128 < code < 128 + signal.NSIG:
        code, sig = None, code - 128
    how = f"exit code {code}" if code is not None else f"killed by {_signame(sig)}"
    if seen.stopped == "timeout":
        return (EndReason.TIMEOUT, None, f"wall-time limit of {limits.wall_seconds:g} s "
                "reached; the process tree was killed")
    if seen.stopped in ("stdout", "stderr"):
        return (EndReason.OUTPUT_LIMIT, None, f"{seen.stopped} passed the limit of "
                f"{limits.output_bytes} bytes; the process tree was killed")
    if seen.stopped == "workdir" or seen.workdir_full:
        return (EndReason.OUTPUT_LIMIT, code,
                f"the work dir reached its limit of {limits.workdir_mb} MB ({how})")
    if sig == signal.SIGXFSZ:
        return (EndReason.OUTPUT_LIMIT, None,
                f"a file passed the work-dir limit of {limits.workdir_mb} MB (SIGXFSZ)")
    events = seen.events
    met = []
    if events.oom_kills:
        met.append(f"memory limit of {limits.memory_mb} MB ({events.oom_kills} OOM kill(s))")
    if events.pids_refused:
        met.append(f"process limit of {limits.pids} ({events.pids_refused} fork(s) refused)")
    if code == 0:
        return EndReason.OK, 0, ("exit code 0 after reaching the " + "; ".join(met)) if met else ""
    if events.oom_kills or (events.memory_failcnt and sig == signal.SIGKILL):
        return (EndReason.OOM, code, f"memory limit of {limits.memory_mb} MB reached "
                f"(cgroup: {events.oom_kills} OOM kill(s)); {how}")
    if events.pids_refused:
        return EndReason.PIDS, code, f"{met[-1]}; {how}"
    if sig == signal.SIGXCPU:
        return EndReason.TIMEOUT, None, "CPU-time limit reached (SIGXCPU)"
    tail = seen.stderr_tail
    if "memory" not in seen.controllers and any(h in tail for h in _OOM_HINTS):
        return (EndReason.OOM, code, f"memory limit of {limits.memory_mb} MB (RLIMIT_AS) "
                f"reached, inferred from stderr; {how}")
    if "pids" not in seen.controllers and any(h in tail for h in _PIDS_HINTS):
        return (EndReason.PIDS, code, f"process limit of {limits.pids} (RLIMIT_NPROC) "
                f"reached, inferred from stderr; {how}")
    return EndReason.EXIT, code, how


def _signame(sig: int | None) -> str:
    try:
        return signal.Signals(sig).name if sig is not None else "a signal"
    except ValueError:
        return f"signal {sig}"
