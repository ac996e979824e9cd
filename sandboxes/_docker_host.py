"""Settling a container from the host, without a ``docker exec``.

Where the daemon runs on this machine and we are root, a container's cgroup
files (its process list and counters) are visible on the host, and its work
dir through ``/proc/<init pid>/root``. The settle step (kill the job's
processes, read the counters, collect the output files, wipe the writable
dirs, remove SysV IPC objects) then costs a few milliseconds instead of an
exec into the container, and works even when a fork bomb left no free pid in
the container. Elsewhere (a remote daemon, not root) the docker backend runs
``_docker_guest.SETTLE`` inside the container instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._workdir import collect_files

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class HostPaths:
    """Where a container's counters, process list and root are on the host."""

    pid: int
    oom_file: Path
    pids_file: Path
    procs_file: Path
    root: Path


def host_paths(pid: int) -> HostPaths | None:
    """The host paths of the container whose init is host process ``pid``; None unless all of
    them are usable (root, a local daemon, nsenter installed)."""
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
    paths = HostPaths(pid, oom, group / "pids.events", group / "cgroup.procs",
                      Path(f"/proc/{pid}/root"))
    try:
        os.statvfs(paths.root / "proc")
        paths.procs_file.read_text()
    except OSError:
        return None
    return paths if read_counters(paths) is not None else None


def read_counters(paths: HostPaths) -> dict[str, int] | None:
    """``{"oom_kill": n, "pids_max": n}`` (cumulative for the container), or None if unreadable."""
    oom = _counter(paths.oom_file, "oom_kill")
    pids = _counter(paths.pids_file, "max")
    if oom is None or pids is None:
        return None
    return {"oom_kill": oom, "pids_max": pids}


def settle(paths: HostPaths, uid: int, workdir: str, wipe: Sequence[str], collect: Sequence[str],
           max_bytes: int) -> tuple[dict, dict[str, bytes]]:
    """Kill every process of ``uid`` in the container, then report its counters, whether the
    work dir is full and what is left dirty, with the ``collect`` files; wipe ``wipe`` dirs."""
    dirty = [] if kill_all(paths, uid) else ["processes"]
    report: dict = dict(read_counters(paths) or {"oom_kill": None, "pids_max": None})
    work = paths.root / workdir.lstrip("/")
    info = os.statvfs(work)
    report["work_full"] = info.f_bavail == 0 or info.f_favail == 0
    files = collect_files(work, collect, max_bytes) if collect else {}
    for directory in wipe:
        if not _wipe(paths.root / directory.lstrip("/")):
            dirty.append(directory)
    if wipe:
        ipc = subprocess.run(["nsenter", f"--target={paths.pid}", "--ipc", "--", "ipcrm", "--all"],
                             capture_output=True)
        if ipc.returncode != 0:
            dirty.append("sysv ipc")
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


def _wipe(directory: Path) -> bool:
    """Empty ``directory`` without following symlinks; True if it is empty afterwards."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return False
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    try:
        return not os.listdir(directory)
    except OSError:
        return False


def _counter(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
    except (OSError, ValueError):
        return None
    return None
