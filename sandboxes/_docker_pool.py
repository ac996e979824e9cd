"""The docker backend's warm pool and the ownership labels that let stale containers be found.

A pool keeps up to ``size`` idle, reset containers per ``PoolKey`` (the limits
fixed when a container is created). ``acquire`` hands out an idle one or
makes a new one; ``release`` takes back a container that was reset cleanly
and removes any other (and, for a pooled key, starts a replacement in the
background). Only the ``max_pools`` most recently used keys keep idle
containers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

from ._base import Limits
from ._docker_host import HostPaths

logger = logging.getLogger(__name__)

LABEL = "cladeforge.sandbox"
OWNER_LABEL = "cladeforge.owner"


@dataclass(frozen=True)
class PoolKey:
    """What a container is created with and a job cannot change: its container-level limits."""

    memory_mb: int
    cpus: float
    pids: int
    workdir_mb: int
    llm_socket: str | None

    @classmethod
    def of(cls, limits: Limits, llm_socket: str | None) -> PoolKey:
        return cls(limits.memory_mb, limits.cpus, limits.pids, limits.workdir_mb, llm_socket)


@dataclass
class Slot:
    """A container, its cgroup counters as of its last reset, its host paths if visible, and
    the launcher exec waiting for its next job."""

    container: object
    host: HostPaths | None = None
    baseline: dict = field(default_factory=lambda: {"oom_kill": 0, "pids_max": 0})
    prepared: Future | None = None  # of an ExecHandle: the next job's launcher, started ahead


class Pool:
    """Idle containers per key (thread-safe); ``create`` and ``remove`` do the work."""

    def __init__(self, create: Callable[[PoolKey], Slot], remove: Callable[[Slot], None],
                 size: int, max_pools: int, wait_seconds: float = 30.0) -> None:
        self._create = create
        self._remove = remove
        self._size = size
        self._max_pools = max_pools
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._idle: OrderedDict[PoolKey, list[Slot]] = OrderedDict()
        self._busy: set[int] = set()
        self._slots: dict[int, Slot] = {}
        self._pending: dict[PoolKey, int] = {}
        self._futures: list[Future] = []
        self._closed = False

    def acquire(self, key: PoolKey, executor: Executor) -> Slot:
        """An idle container for ``key``, or a new one (a cold start).

        While a container of ``key`` is being started in the background, waiting
        for it is no slower than starting another, so ``acquire`` waits. After a
        cold start the pool of ``key`` is filled in the background.
        """
        deadline = time.monotonic() + self._wait_seconds
        with self._ready:
            self._touch(key)
            while not self._closed:
                idle = self._idle.get(key)
                if idle:
                    slot = idle.pop(0)  # the longest idle: its launcher is ready
                    self._busy.add(id(slot))
                    return slot
                coming = self._pending.get(key, 0)
                remaining = deadline - time.monotonic()
                if not coming or remaining <= 0:
                    break
                self._ready.wait(remaining)
        slot = self._new(key, busy=True)
        with contextlib.suppress(RuntimeError):  # RuntimeError: the executor is shut down
            self.fill(key, executor, in_use=1)
        return slot

    def release(self, key: PoolKey, slot: Slot, reusable: bool, executor: Executor) -> None:
        """Take ``slot`` back if it is clean and there is room; otherwise remove it."""
        with self._ready:
            self._busy.discard(id(slot))
            idle = self._idle.get(key)
            if (reusable and not self._closed and idle is not None
                    and len(idle) + self._pending.get(key, 0) < self._size):
                idle.append(slot)
                self._ready.notify()
                return
            self._ready.notify_all()
            self._slots.pop(id(slot), None)
            refill = not reusable and idle is not None and not self._closed and self._size > 0
        self._remove(slot)
        if refill:
            try:
                self.fill(key, executor)
            except RuntimeError:
                pass  # the executor is shut down: the sandbox is closing

    def fill(self, key: PoolKey, executor: Executor, in_use: int = 0) -> None:
        """Start containers in the background until ``key`` has ``size`` idle ones (counting
        ``in_use`` ones that will come back)."""
        with self._lock:
            if self._closed or self._size == 0:
                return
            self._touch(key)
            missing = self._size - len(self._idle[key]) - self._pending.get(key, 0) - in_use
            self._pending[key] = self._pending.get(key, 0) + max(0, missing)
            for _ in range(max(0, missing)):
                self._futures.append(executor.submit(self._fill_one, key))

    def wait_filled(self) -> None:
        """Block until every background start so far has finished; raise the first failure."""
        with self._lock:
            futures, self._futures = self._futures, []
        wait(futures)
        for future in futures:
            future.result()

    def close(self) -> None:
        """Remove every container of the pool, idle or in use."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
            slots = list(self._slots.values())
            self._slots.clear()
            self._idle.clear()
        for slot in slots:
            self._remove(slot)

    def _fill_one(self, key: PoolKey) -> None:
        try:
            slot = self._new(key, busy=False)
        except BaseException:
            with self._ready:
                self._pending[key] -= 1
                self._ready.notify_all()
            raise
        with self._ready:
            self._pending[key] -= 1
            idle = self._idle.get(key)
            if not self._closed and idle is not None and len(idle) < self._size:
                idle.append(slot)
                self._ready.notify()
                return
            self._slots.pop(id(slot), None)
            self._ready.notify_all()
        self._remove(slot)

    def _new(self, key: PoolKey, busy: bool) -> Slot:
        slot = self._create(key)
        with self._lock:
            closed = self._closed
            if not closed:
                self._slots[id(slot)] = slot
                if busy:
                    self._busy.add(id(slot))
        if closed:
            self._remove(slot)
            raise RuntimeError("the sandbox pool was closed")
        return slot

    def _touch(self, key: PoolKey) -> None:
        """Mark ``key`` most recently used; drop idle containers of keys beyond ``max_pools``."""
        if self._size == 0:
            return
        self._idle.setdefault(key, [])
        self._idle.move_to_end(key)
        while len(self._idle) > self._max_pools:
            old, slots = self._idle.popitem(last=False)
            for slot in slots:
                self._slots.pop(id(slot), None)
                threading.Thread(target=self._remove, args=(slot,), daemon=True).start()


def owner_label() -> str:
    """This process as ``boot-id/pid-namespace/pid/start-time``, to tell later if it is gone."""
    pid = os.getpid()
    return f"{_boot_id()}/{_pid_namespace()}/{pid}/{_start_time(pid)}"


def owner_gone(label: str) -> bool:
    """True if the process named by an ``owner_label`` has ended (or the machine rebooted).

    A process in another pid namespace on the same boot cannot be checked and
    counts as alive.
    """
    parts = label.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return True
    boot, namespace, pid, started = parts
    if boot != _boot_id():
        return True
    if namespace != _pid_namespace():
        return False
    return _start_time(int(pid)) != started


def stale_containers(client: object) -> list:
    """Containers of this backend (any run) whose owning host process is gone."""
    found = client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
    return [c for c in found if owner_gone(c.labels.get(OWNER_LABEL, ""))]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot, or '' if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]
