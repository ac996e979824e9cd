"""``SandboxSpec`` and ``open_executor``: a caller says where its jobs run and gets an executor.

The spec names a backend (one of ``SANDBOX_KINDS``, the registry in
``_backends``) and an executor (one of ``EXECUTOR_KINDS``, the registry
below); ``open_executor(spec)`` builds both. Nothing is started before the
first job: docker connects and Ray starts then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ._backends import SANDBOX_KINDS, backend, unknown_name
from ._base import SandboxError
from ._executor import Executor, LocalExecutor, RayExecutor
from ._images import DEFAULT_BUILD_HINT


@dataclass(frozen=True)
class SandboxSpec:
    """Where jobs run.

    ``backend``: "docker", "bwrap" or "process" (``SANDBOX_KINDS``).
    ``warm``: docker's number of containers kept ready between jobs; ignored by
    backends without a warm pool. ``executor``: "local" (worker threads on
    this machine) or "ray" (actors on a Ray cluster), see ``EXECUTOR_KINDS``.
    ``workers``: how many jobs run at once (local: threads over one sandbox;
    ray: actors, each with its own sandbox). ``ray_address``: passed to
    ``ray.init`` by the ray executor (None starts or joins a local instance).
    ``build_hint``: the sentence shown to a user whose image or root
    filesystem is missing; a CLI passes its own command.

    A bad value raises ``SandboxError`` on construction.
    """

    backend: str
    warm: int = 0
    executor: str = "local"
    workers: int = 2
    ray_address: str | None = None
    build_hint: str = DEFAULT_BUILD_HINT

    def __post_init__(self) -> None:
        if self.backend not in SANDBOX_KINDS:
            raise unknown_name("sandbox backend", self.backend, SANDBOX_KINDS)
        if self.executor not in EXECUTOR_KINDS:
            raise unknown_name("executor", self.executor, EXECUTOR_KINDS)
        if not _is_int(self.workers) or self.workers < 1:
            raise SandboxError(f"workers must be an integer of at least 1, got {self.workers!r}")
        if not _is_int(self.warm) or self.warm < 0:
            raise SandboxError(f"warm must be an integer of at least 0, got {self.warm!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _local(spec: SandboxSpec) -> Executor:
    chosen = backend(spec.backend)
    return LocalExecutor(chosen.make(**chosen.spec_options(spec)), max_workers=spec.workers)


def _ray(spec: SandboxSpec) -> Executor:
    # each Ray actor builds its own sandbox on its node from these options
    return RayExecutor(spec.backend, backend(spec.backend).spec_options(spec),
                       workers=spec.workers, address=spec.ray_address)


#: Every executor, by name, in the order ``EXECUTOR_KINDS`` lists them.
EXECUTORS: Mapping[str, Callable[[SandboxSpec], Executor]] = MappingProxyType({
    "local": _local,
    "ray": _ray,
})
EXECUTOR_KINDS: tuple[str, ...] = tuple(EXECUTORS)


def open_executor(spec: SandboxSpec) -> Executor:
    """The executor ``spec`` describes, over sandboxes of its backend.

    Close it (or use it as a context manager) to release the sandboxes.
    """
    return EXECUTORS[spec.executor](spec)
