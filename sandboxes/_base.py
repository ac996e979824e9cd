"""The one sandbox interface: a job goes in, a result comes out.

A ``Job`` is a command run over a set of input files in a fresh writable work
dir, under ``Limits``. A ``Result`` says why the run ended (``EndReason``),
with the exit code, capped stdout/stderr, the output files asked for, and the
wall time. Every backend implements ``Sandbox.run``; nothing else is shared
between backends except the helpers in ``_job_files.py``.

Always, in every isolating backend: no network, no host environment (only the
variables the job names), a read-only root, a non-root user, no capabilities,
no privilege escalation. The ``process`` backend isolates nothing and says so.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: The work dir's path inside every sandbox (the command's current directory).
WORKDIR = "/work"
#: Where the LLM gateway's unix socket appears inside a sandbox.
LLM_SOCKET = "/run/cladeforge/llm.sock"
#: The environment variable naming that socket inside a sandbox.
LLM_SOCKET_ENV = "CLADEFORGE_LLM_SOCKET"
#: The unprivileged user id and group id sandboxed commands run as.
SANDBOX_UID = 65534
SANDBOX_GID = 65534


class SandboxError(Exception):
    """A sandbox cannot be used (no daemon, no image, bad limits): the user must fix it.

    A misbehaving candidate is never a ``SandboxError``: it is a ``Result``
    whose ``reason`` says what happened.
    """


class EndReason(enum.StrEnum):
    """Why a sandboxed run ended."""

    OK = "ok"                      # exit code 0
    EXIT = "exit"                  # a non-zero exit code or a signal not caused by a limit
    TIMEOUT = "timeout"            # wall-time limit reached; the whole process tree was killed
    OOM = "oom"                    # memory limit reached
    PIDS = "pids"                  # process-count limit reached
    OUTPUT_LIMIT = "output_limit"  # stdout/stderr or the work dir grew past its limit
    ERROR = "error"                # the sandbox itself failed (see Result.detail)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. Every backend enforces every field it can.

    ``output_bytes`` caps stdout and stderr each (what is kept; a run that
    writes more ends with ``output_limit``). ``workdir_mb`` caps what the
    command can write into the work dir.
    """

    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 64
    wall_seconds: float = 30.0
    output_bytes: int = 1 << 20
    workdir_mb: int = 64

    def __post_init__(self) -> None:
        for name in ("memory_mb", "pids", "output_bytes", "workdir_mb"):
            if getattr(self, name) < 1:
                value = getattr(self, name)
                raise SandboxError(f"sandbox limit {name} must be at least 1, got {value}")
        if self.cpus <= 0 or self.wall_seconds <= 0:
            raise SandboxError("sandbox limits cpus and wall_seconds must be positive, "
                               f"got {self.cpus} and {self.wall_seconds}")


@dataclass(frozen=True)
class Job:
    """One command to run in a fresh work dir.

    ``files`` maps relative paths (``"main.py"``, ``"data/in.json"``) to their
    bytes; they are written into the work dir before the command starts.
    ``collect`` names the relative paths whose bytes come back in
    ``Result.files`` (missing ones are left out). ``env`` is the whole
    environment of the command apart from ``PATH``, ``HOME`` and ``LANG``,
    which each backend sets. ``llm_socket`` is a host path of an LLM gateway
    socket to mount at ``LLM_SOCKET``.
    """

    command: Sequence[str]
    files: Mapping[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    collect: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    llm_socket: str | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise SandboxError("a sandbox job needs a command")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "collect", tuple(self.collect))
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def __reduce__(self) -> tuple[Any, ...]:  # read-only mappings do not pickle; for Ray
        return (Job, (self.command, dict(self.files), self.limits, self.collect,
                      dict(self.env), self.llm_socket))


@dataclass(frozen=True)
class Result:
    """What a sandboxed run did. ``exit_code`` is None when the run never exited by itself."""

    reason: EndReason
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    files: Mapping[str, bytes]
    wall_seconds: float
    detail: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    def __reduce__(self) -> tuple[Any, ...]:  # for Ray, as Job
        return (Result, (self.reason, self.exit_code, self.stdout, self.stderr, dict(self.files),
                         self.wall_seconds, self.detail))

    @property
    def ok(self) -> bool:
        return self.reason is EndReason.OK


class Sandbox(ABC):
    """A place to run untrusted commands. ``run`` is thread-safe and blocking.

    ``isolated`` is False only for backends that protect nothing (``process``).
    """

    name: str = ""
    isolated: bool = True

    @abstractmethod
    def run(self, job: Job) -> Result:
        """Run ``job`` to its end and report what happened; a bad candidate never raises."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing
        """Release what the backend holds (warm containers, temp dirs). Idempotent."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
