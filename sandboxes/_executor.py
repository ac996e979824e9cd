"""Executors: where sandbox jobs run, seen from an asyncio evaluator.

``Executor.run(job)`` is awaited by evaluators; how many jobs run at once and
on which machine is the executor's business:

- ``LocalExecutor`` runs jobs on this machine through one ``Sandbox``, in
  worker threads, at most ``max_workers`` at a time.
- ``RayExecutor`` fans jobs out over a Ray cluster. Each of its ``workers``
  is a Ray actor holding its own sandbox (so a docker warm pool stays warm
  between jobs on that node); every job is one Ray actor task, and the actors
  are spread over the cluster's nodes. Each node needs its own Docker daemon
  or bubblewrap, whichever the sandbox kind uses.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from ._base import Job, Result, Sandbox, SandboxError

logger = logging.getLogger(__name__)


class Executor(ABC):
    """Runs sandbox jobs for an asyncio caller."""

    @abstractmethod
    async def run(self, job: Job) -> Result:
        """Run ``job`` and return its result (a bad candidate is a result, never an error)."""

    @abstractmethod
    def close(self) -> None:
        """Release the sandboxes (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Jobs on this machine, through ``sandbox``, at most ``max_workers`` at once.

    The sandbox's blocking ``run`` happens in worker threads, so the event loop
    stays free for LLM requests while programs run. ``close`` closes the sandbox.
    """

    def __init__(self, sandbox: Sandbox, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise SandboxError(f"max_workers must be at least 1, got {max_workers}")
        self.sandbox = sandbox
        self.max_workers = max_workers
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def run(self, job: Job) -> Result:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one semaphore per event loop
            self._slots = (loop, asyncio.Semaphore(self.max_workers))
        async with self._slots[1]:
            return await asyncio.to_thread(self.sandbox.run, job)

    def close(self) -> None:
        self.sandbox.close()


class _SandboxHost:
    """A Ray actor's state: one sandbox built on the actor's node."""

    def __init__(self, kind: str, options: Mapping[str, Any]) -> None:
        from ._backends import make_sandbox  # on the worker

        self.sandbox = make_sandbox(kind, **dict(options))

    def run(self, job: Job) -> Result:
        return self.sandbox.run(job)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def close(self) -> None:
        self.sandbox.close()


class RayExecutor(Executor):
    """Jobs as Ray actor tasks on ``workers`` sandbox hosts spread over a Ray cluster.

    ``kind`` and ``options`` say which sandbox each host builds on its node
    (as ``make_sandbox(kind, **options)``). ``address`` is passed to
    ``ray.init`` when Ray is not initialised yet (None starts or joins a local
    instance); an executor that started Ray shuts it down on ``close``. Each
    host runs one job at a time; a job waits for the next free host.
    """

    def __init__(self, kind: str, options: Mapping[str, Any] | None = None, *,
                 workers: int = 2, address: str | None = None,
                 ray_init: Mapping[str, Any] | None = None) -> None:
        if workers < 1:
            raise SandboxError(f"workers must be at least 1, got {workers}")
        self.kind = kind
        self.options = dict(options or {})
        self.workers = workers
        self.address = address
        self.ray_init = dict(ray_init or {})
        self._hosts: list[Any] = []
        self._free: tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]] | None = None
        self._started_ray = False

    def start(self) -> RayExecutor:
        """Connect to Ray (starting a local instance if needed) and create the hosts."""
        if self._hosts:
            return self
        try:
            import ray
        except ImportError as exc:
            raise SandboxError("the Ray executor needs Ray: pip install 'cladeforge[ray]'") from exc
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     **self.ray_init)
            self._started_ray = True
        host = ray.remote(num_cpus=0)(_SandboxHost)
        self._hosts = [host.options(scheduling_strategy="SPREAD").remote(self.kind, self.options)
                       for _ in range(self.workers)]
        try:  # construct every host now, so that a sandbox that cannot run here fails early
            ray.get([h.node.remote() for h in self._hosts])
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise SandboxError(f"a Ray sandbox host could not start its {self.kind!r} "
                               f"sandbox: {exc}") from exc
        return self

    def nodes(self) -> list[str]:
        """The Ray node id of each host (for checking the spread)."""
        import ray

        return ray.get([h.node.remote() for h in self.start()._hosts])

    async def run(self, job: Job) -> Result:
        loop = asyncio.get_running_loop()
        if self._free is None or self._free[0] is not loop:  # one queue per event loop
            self._free = (loop, asyncio.Queue())
            for h in self.start()._hosts:
                self._free[1].put_nowait(h)
        free = self._free[1]
        host = await free.get()
        try:
            return await host.run.remote(job)
        finally:
            free.put_nowait(host)

    def close(self) -> None:
        if not self._hosts and not self._started_ray:
            return
        import ray

        hosts, self._hosts, self._free = self._hosts, [], None
        for h in hosts:
            try:
                ray.get(h.close.remote(), timeout=60)
            except Exception as exc:  # noqa: BLE001 - a dead host has nothing left to close
                logger.warning("closing a Ray sandbox host failed: %s", exc)
            ray.kill(h)
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
