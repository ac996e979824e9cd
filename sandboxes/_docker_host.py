"""Settling a container from the host, without a ``docker exec``.

Where the daemon runs on this machine and we are root, a container's cgroup
files (its process list and counters) are visible on the host, and its work
dir through ``/proc/<init pid>/root``. The settle step (kill the job's
processes, read the counters, collect the output files, reset what the job
could leave behind) then costs a few milliseconds instead of an exec into
the container, and works even when a fork bomb left no free pid in the
container. Elsewhere (a remote daemon, not root) the docker backend runs
``_docker_guest.SETTLE`` inside the container instead.

What a job can leave behind for the next job in the same container, by
namespace, and how the reset covers it (a container it cannot reset is
reported dirty and replaced):

* mount: every file system mounted writable whose root the job's user may
  write (``/work``, ``/tmp``, ``/dev/shm``, the POSIX message queues in
  ``/dev/mqueue``), found from the container's mount table when the container
  is created, not from a list: each is emptied, however deep. A writable
  mount of a regular file cannot be emptied: such a container is never
  reused (a device such as ``/dev/null`` holds nothing).
* ipc: System V objects are removed (``ipcrm --all`` in the container's IPC
  namespace); POSIX queues live in ``/dev/mqueue`` (above).
* net: an open socket outlives its process only while something holds it;
  any socket left in the container's network namespace after the kill marks
  the container dirty.
* pid: every process of the job's user is killed; one left marks it dirty.
* uts, user, keyrings, cgroups: out of a job's reach (no capabilities, and
  the seccomp policy of ``_seccomp`` refuses ``sethostname``, the keyring
  calls and ``unshare``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._job_files import collect_files
from ._namespace_state import rw_mounts, sockets_left
from ._tree import remove_contents

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class HostPaths:
    """Where a container's counters, process list and root are on the host, and the mounts
    the job's user can write: ``writable`` directories (emptied after every job) and
    ``unresettable`` ones (regular files: the container is never reused)."""

    pid: int
    oom_file: Path
    pids_file: Path
    procs_file: Path
    root: Path
    writable: tuple[str, ...] = ()
    unresettable: tuple[str, ...] = ()


def host_paths(pid: int, uid: int, gid: int) -> HostPaths | None:
    """The host paths of the container whose init is host process ``pid``, with the mounts
    that user ``uid:gid`` may write; None unless all of them are usable (root, a local daemon,
    nsenter installed)."""
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    v1: dict[str, str] = {}
    v2 = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            v2 = path
        for name in controllers.split(","):
            v1[name] = path
    if "memory" in v1 and "pids" in v1:
        oom = CGROUP_ROOT / "memory" / v1["memory"].lstrip("/") / "memory.oom_control"
        group = CGROUP_ROOT / "pids" / v1["pids"].lstrip("/")
    elif v2 is not None:
        group = CGROUP_ROOT / v2.lstrip("/")
        oom = group / "memory.events"
    else:
        return None
    root = Path(f"/proc/{pid}/root")
    try:
        os.statvfs(root / "proc")
        (group / "cgroup.procs").read_text()
        writable, unresettable = writable_mounts(pid, uid, gid)
    except OSError:
        return None
    paths = HostPaths(pid, oom, group / "pids.events", group / "cgroup.procs", root,
                      writable, unresettable)
    return paths if read_counters(paths) is not None else None


def writable_mounts(pid: int, uid: int, gid: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The mount points of process ``pid``'s mount namespace that ``uid:gid`` can write into:
    (directories, regular files)."""
    directories, others = [], []
    for point in rw_mounts(f"/proc/{pid}/mountinfo"):
        try:
            info = os.stat(f"/proc/{pid}/root{point}", follow_symlinks=False)
        except OSError:
            continue
        if _may_write(info, uid, gid):
            if stat.S_ISDIR(info.st_mode):
                directories.append(point)
            elif stat.S_ISREG(info.st_mode):  # devices (/dev/null bound over /proc/keys) hold none
                others.append(point)
    return tuple(directories), tuple(others)


def _may_write(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IWUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IWGRP)
    return bool(info.st_mode & stat.S_IWOTH)


def read_counters(paths: HostPaths) -> dict[str, int] | None:
    """``{"oom_kill": n, "pids_max": n}`` (cumulative for the container), or None if unreadable."""
    oom = _counter(paths.oom_file, "oom_kill")
    pids = _counter(paths.pids_file, "max")
    if oom is None or pids is None:
        return None
    return {"oom_kill": oom, "pids_max": pids}


def settle(paths: HostPaths, uid: int, workdir: str, reset: bool, collect: Sequence[str],
           max_bytes: int) -> tuple[dict, dict[str, bytes]]:
    """Kill every process of ``uid`` in the container, then report its counters, whether the
    work dir is full and what is left dirty, with the ``collect`` files; with ``reset``, empty
    every place the job could leave something for the next one (see the module docstring)."""
    dirty = [] if kill_all(paths, uid) else ["processes"]
    report: dict = dict(read_counters(paths) or {"oom_kill": None, "pids_max": None})
    work = paths.root / workdir.lstrip("/")
    info = os.statvfs(work)
    report["work_full"] = info.f_bavail == 0 or info.f_favail == 0
    files = collect_files(work, collect, max_bytes) if collect else {}
    if reset:
        dirty += [f"writable mount {point}" for point in paths.unresettable]
        dirty += [point for point in paths.writable
                  if not remove_contents(paths.root / point.lstrip("/"))]
        ipc = subprocess.run(["nsenter", f"--target={paths.pid}", "--ipc", "--", "ipcrm", "--all"],
                             capture_output=True)
        if ipc.returncode != 0:
            dirty.append("sysv ipc")
        if sockets_left(f"/proc/{paths.pid}/net"):
            dirty.append("sockets")
    report["dirty"] = dirty
    return report, files


def kill_all(paths: HostPaths, uid: int, attempts: int = 500) -> bool:
    """SIGKILL every process of ``uid`` in the container until none is left; False if some are."""
    for attempt in range(attempts):
        victims = [pid for pid in _procs(paths) if _uid(pid) == uid]
        if not victims:
            return True
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if attempt:
            time.sleep(0.002)
    return False


def _procs(paths: HostPaths) -> list[int]:
    try:
        return [int(line) for line in paths.procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


def _uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _counter(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
    except (OSError, ValueError):
        return None
    return None
