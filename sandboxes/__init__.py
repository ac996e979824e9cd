"""Where untrusted code runs: docker, bubblewrap and process backends, images, the LLM gateway.

Every backend implements ``Sandbox.run(Job) -> Result`` (see ``_base.py``).
A caller describes where its jobs run with a ``SandboxSpec`` (backend, warm
pool, local or Ray executor, workers, how to tell a user to build a missing
image) and gets an ``Executor`` from ``open_executor(spec)``;
``check_backend(name)`` says whether one backend can run here, probing only
that one. The backends and executors are named in one registry each
(``SANDBOX_KINDS``, ``EXECUTOR_KINDS``); ``make_sandbox(kind, **options)``
builds one backend's sandbox directly.

This package imports nothing from ``evolve``, ``fitness`` or ``archive``. The
LLM gateway's names load on first use: its HTTP server (aiohttp) is needed only
by runs whose candidates talk to an LLM, and a sandbox server process may run
where that package is not installed.
"""

from typing import TYPE_CHECKING, Any

from ._backends import SANDBOX_KINDS, check_backend, check_backends, make_sandbox
from ._base import (
    LLM_SOCKET,
    LLM_SOCKET_ENV,
    SANDBOX_GID,
    SANDBOX_UID,
    WORKDIR,
    EndReason,
    Job,
    Limits,
    Result,
    Sandbox,
    SandboxError,
)
from ._bwrap import BwrapSandbox
from ._check import BackendStatus
from ._docker import DockerSandbox
from ._executor import Executor, LocalExecutor, RayExecutor
from ._images import (
    DEFAULT_BUILD_HINT,
    Recipe,
    build_image,
    default_image,
    default_recipe,
    ensure_rootfs,
    rootfs_path,
)
from ._job_files import (
    CappedBuffer,
    check_relpath,
    collect_files,
    files_not_written,
    job_files_problem,
    write_files,
)
from ._limits import limits_enforcement
from ._process import ProcessSandbox
from ._spec import EXECUTOR_KINDS, SandboxSpec, open_executor
from ._untrusted import MAX_JSON_DEPTH, UntrustedDataError, untrusted_json

if TYPE_CHECKING:
    from ._gateway import (
        GatewaySession,
        GatewayUsage,
        LLMGateway,
        TokenCounter,
        UpstreamError,
        guest_client_files,
        openai_completion,
    )

_GATEWAY_NAMES = frozenset({"GatewaySession", "GatewayUsage", "LLMGateway", "TokenCounter",
                            "UpstreamError", "guest_client_files", "openai_completion"})


def __getattr__(name: str) -> Any:
    if name in _GATEWAY_NAMES:
        from . import _gateway

        return getattr(_gateway, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackendStatus",
    "DockerSandbox",
    "Recipe",
    "build_image",
    "check_backend",
    "check_backends",
    "default_image",
    "default_recipe",
    "ensure_rootfs",
    "rootfs_path",
    "LLM_SOCKET",
    "LLM_SOCKET_ENV",
    "MAX_JSON_DEPTH",
    "SANDBOX_GID",
    "SANDBOX_KINDS",
    "SANDBOX_UID",
    "WORKDIR",
    "BwrapSandbox",
    "CappedBuffer",
    "DEFAULT_BUILD_HINT",
    "EndReason",
    "EXECUTOR_KINDS",
    "Executor",
    "GatewaySession",
    "GatewayUsage",
    "LLMGateway",
    "LocalExecutor",
    "Job",
    "Limits",
    "ProcessSandbox",
    "RayExecutor",
    "Result",
    "Sandbox",
    "SandboxError",
    "SandboxSpec",
    "TokenCounter",
    "UntrustedDataError",
    "UpstreamError",
    "check_relpath",
    "collect_files",
    "files_not_written",
    "guest_client_files",
    "job_files_problem",
    "limits_enforcement",
    "make_sandbox",
    "open_executor",
    "openai_completion",
    "untrusted_json",
    "write_files",
]
