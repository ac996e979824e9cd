"""Per-run cgroups (v1 or v2) for memory, pids and cpu.

``detect()`` finds where this process may create child cgroups: below its own
cgroup of each controller (so a run can never get more than this process
has). With cgroup v1 (``/sys/fs/cgroup/<controller>/``) that is
``memory.limit_in_bytes`` (+ ``memory.memsw.limit_in_bytes`` where swap
accounting exists), ``pids.max`` and ``cpu.cfs_quota_us``; with v2 (detected by
``/sys/fs/cgroup/cgroup.controllers``) ``memory.max`` + ``memory.swap.max``,
``pids.max`` and ``cpu.max``, after enabling those controllers in this
process's ``cgroup.subtree_control`` (which v2 refuses while processes live in
that cgroup unless it is the root; then there is no cgroup and the rlimit
fallback is used).

How limits are seen afterwards: OOM kills from ``memory.oom_control``
(``oom_kill``, v1) or ``memory.events`` (``oom_kill``, v2), plus
``memory.failcnt``; the pids limit from ``pids.events`` (``max``: forks
refused). A run's cgroup is named ``cladeforge-<host pid>-<token>``; cgroups
of a host process that died are emptied and removed on the next run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "cladeforge-"
CONTROLLERS = ("memory", "pids", "cpu")
_CFS_PERIOD = 100_000


@dataclass(frozen=True)
class CgroupHost:
    """Where per-run cgroups can be made: cgroup ``version`` and a parent dir per controller."""

    version: int
    parents: Mapping[str, Path]
    note: str

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.parents)


@dataclass(frozen=True)
class CgroupEvents:
    """What the kernel recorded for a run's cgroup."""

    oom_kills: int = 0
    memory_failcnt: int = 0
    pids_refused: int = 0


def detect(root: Path = CGROUP_ROOT) -> CgroupHost:
    """Find the usable controllers for per-run cgroups; ``note`` says what and why not."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        return CgroupHost(0, {}, f"no cgroups ({exc})")
    if (root / "cgroup.controllers").exists():
        return _detect_v2(root, own)
    return _detect_v1(root, own)


def _detect_v1(root: Path, own: list[str]) -> CgroupHost:
    parents: dict[str, Path] = {}
    missing = []
    for line in own:
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name in CONTROLLERS and name not in parents:
                parent = root / name / path.lstrip("/")
                # a root cgroup has no pids.max: cgroup.procs is what every one has
                if (parent / "cgroup.procs").exists() and os.access(parent, os.W_OK):
                    parents[name] = parent
    missing = [name for name in CONTROLLERS if name not in parents]
    note = "cgroup v1: " + ", ".join(sorted(parents)) if parents else "cgroup v1: none writable"
    if missing:
        note += f" (not writable or absent: {', '.join(missing)})"
    return CgroupHost(1, parents, note)


def _detect_v2(root: Path, own: list[str]) -> CgroupHost:
    path = next((line.split(":", 2)[2] for line in own if line.startswith("0::")), None)
    if path is None:
        return CgroupHost(2, {}, "cgroup v2: this process is in no v2 cgroup")
    parent = root / path.lstrip("/")
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        wanted = [name for name in CONTROLLERS if name in available and name not in enabled]
        if wanted:
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{n}" for n in wanted))
            enabled.update(wanted)
    except OSError as exc:
        return CgroupHost(2, {}, f"cgroup v2: cannot enable controllers below {parent} ({exc}); "
                                 "run inside a delegated cgroup (e.g. systemd-run -p Delegate=yes)")
    usable = {name: parent for name in CONTROLLERS if name in enabled}
    return CgroupHost(2, usable, "cgroup v2: " + (", ".join(sorted(usable)) or "none"))


class RunCgroup:
    """The cgroup(s) of one run: created with limits, joined by the child, emptied, removed."""

    def __init__(self, version: int, dirs: Mapping[str, Path]) -> None:
        self.version = version
        self.dirs = dict(dirs)

    @classmethod
    def create(cls, host: CgroupHost, memory_mb: int, pids: int, cpus: float) -> RunCgroup:
        """Make the run's cgroup(s) below ``host`` and set the limits (OSError when impossible)."""
        sweep_stale(host)
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        dirs = {ctrl: parent / name for ctrl, parent in host.parents.items()}
        group = cls(host.version, {})
        try:
            for ctrl, path in dirs.items():
                if path not in group.dirs.values():  # v2: one dir for every controller
                    path.mkdir()
                group.dirs[ctrl] = path
            group._set_limits(memory_mb << 20, pids, cpus)
        except OSError:
            group.remove()
            raise
        return group

    def _set_limits(self, memory: int, pids: int, cpus: float) -> None:
        quota = max(1000, int(cpus * _CFS_PERIOD))
        if self.version == 1:
            if "memory" in self.dirs:
                mem = self.dirs["memory"]
                _write(mem / "memory.limit_in_bytes", memory)
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    _write(mem / "memory.memsw.limit_in_bytes", memory)
            if "pids" in self.dirs:
                _write(self.dirs["pids"] / "pids.max", pids)
            if "cpu" in self.dirs:
                _write(self.dirs["cpu"] / "cpu.cfs_period_us", _CFS_PERIOD)
                _write(self.dirs["cpu"] / "cpu.cfs_quota_us", quota)
            return
        if "memory" in self.dirs:
            _write(self.dirs["memory"] / "memory.max", memory)
            with contextlib.suppress(OSError):
                _write(self.dirs["memory"] / "memory.swap.max", 0)
        if "pids" in self.dirs:
            _write(self.dirs["pids"] / "pids.max", pids)
        if "cpu" in self.dirs:
            _write(self.dirs["cpu"] / "cpu.max", f"{quota} {_CFS_PERIOD}")

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.dirs)

    def procs_files(self) -> list[bytes]:
        """The ``cgroup.procs`` files a child writes ``0`` into to join (before it execs)."""
        return [os.fsencode(path / "cgroup.procs") for path in dict.fromkeys(self.dirs.values())]

    def pids(self) -> set[int]:
        """Every process in the run's cgroup(s) now."""
        found: set[int] = set()
        for path in dict.fromkeys(self.dirs.values()):
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return found

    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; True once empty.

        A candidate may ``setsid()`` out of its process group, but it cannot
        leave its cgroup. With v2 ``cgroup.kill`` does it at once; with v1 the
        member list is killed repeatedly (the pids limit bounds any fork race).
        """
        if self.version == 2 and self.dirs:
            path = next(iter(self.dirs.values()))
            with contextlib.suppress(OSError):
                _write(path / "cgroup.kill", 1)
        deadline = time.monotonic() + timeout
        while True:
            members = self.pids()
            if not members:
                return True
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                logger.warning("processes %s survived SIGKILL in %s", sorted(members),
                               list(self.dirs.values()))
                return False
            time.sleep(0.01)

    def events(self) -> CgroupEvents:
        """The OOM kills, memory-limit hits and refused forks recorded so far."""
        mem, pids = self.dirs.get("memory"), self.dirs.get("pids")
        oom = failcnt = refused = 0
        if mem is not None and self.version == 1:
            oom = _keyed(mem / "memory.oom_control").get("oom_kill", 0)
            failcnt = max(_int(mem / "memory.failcnt"), _int(mem / "memory.memsw.failcnt"))
        elif mem is not None:
            events = _keyed(mem / "memory.events")
            oom, failcnt = events.get("oom_kill", 0), events.get("max", 0)
        if pids is not None:
            refused = _keyed(pids / "pids.events").get("max", 0)
        return CgroupEvents(oom, failcnt, refused)

    def remove(self) -> None:
        """Empty and remove the run's cgroup(s). Idempotent."""
        if not self.dirs:
            return
        self.kill()
        for path in dict.fromkeys(self.dirs.values()):
            _rmdir(path)
        self.dirs.clear()


def _rmdir(path: Path) -> None:
    deadline = time.monotonic() + 5.0
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY while the last killed tasks exit
            if time.monotonic() > deadline:
                logger.warning("cannot remove the cgroup %s: %s", path, exc)
                return
            time.sleep(0.01)


def sweep_stale(host: CgroupHost) -> None:
    """Empty and remove run cgroups left by host processes that died."""
    for ctrl, parent in host.parents.items():
        try:
            names = [entry.name for entry in os.scandir(parent) if entry.is_dir()]
        except OSError:
            continue
        for name in names:
            owner = name[len(PREFIX):].split("-", 1)[0] if name.startswith(PREFIX) else ""
            if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
                logger.info("removing the stale cgroup %s (its process %s is gone)",
                            parent / name, owner)
                RunCgroup(host.version, {ctrl: parent / name}).remove()


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _write(path: Path, value: object) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(str(value))


def _int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                values[parts[0]] = int(parts[1])
    return values
