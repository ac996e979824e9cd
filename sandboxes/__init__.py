"""Where untrusted code runs: docker, bubblewrap and process backends, images, the LLM gateway.

Every backend implements ``Sandbox.run(Job) -> Result`` (see ``_base.py``).
This package imports nothing from ``evolve``, ``fitness`` or ``archive``. The
LLM gateway's names load on first use: its HTTP server (aiohttp) is needed only
by runs whose candidates talk to an LLM, and a sandbox server process may run
where that package is not installed.
"""

from typing import TYPE_CHECKING, Any

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
from ._check import BackendStatus, check_backends
from ._docker import DockerSandbox
from ._executor import Executor, LocalExecutor, RayExecutor
from ._images import Recipe, build_image, default_image, default_recipe, ensure_rootfs, rootfs_path
from ._limits import limits_enforcement
from ._process import ProcessSandbox
from ._registry import SANDBOX_KINDS, make_sandbox
from ._untrusted import MAX_JSON_DEPTH, UntrustedDataError, untrusted_json
from ._workdir import (
    CappedBuffer,
    check_relpath,
    collect_files,
    files_not_written,
    job_files_problem,
    write_files,
)

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
    "EndReason",
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
    "openai_completion",
    "untrusted_json",
    "write_files",
]
