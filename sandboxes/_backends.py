"""The registry of sandbox backends: each one record, the only place backends are named.

A ``Backend`` says how to load its ``Sandbox`` class (imported when first
asked for, so that choosing bwrap never imports the docker SDK), which
constructor options a ``SandboxSpec`` gives it, which options it settles at
construction, and how to probe whether it can run here. Adding a backend is
adding one record to ``BACKENDS``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from ._base import Sandbox, SandboxError
from ._check import BackendStatus, probe_bwrap, probe_docker, probe_process
from ._images import DEFAULT_BUILD_HINT, rootfs_path

logger = logging.getLogger(__name__)


class SpecFields(Protocol):
    """What a backend reads from a ``SandboxSpec`` (``_spec`` imports this module, so the
    records name the fields they use rather than the class)."""

    @property
    def warm(self) -> int: ...

    @property
    def build_hint(self) -> str: ...


def _as_given(options: dict[str, Any]) -> dict[str, Any]:
    return options


@dataclass(frozen=True)
class Backend:
    """One sandbox backend.

    ``load`` returns its ``Sandbox`` class, importing the backend's module;
    ``spec_options`` the constructor keywords a spec gives it; ``settle`` fills
    in options decided only at construction (bwrap's ``root="auto"``);
    ``probe(build_hint)`` whether it can run here, touching nothing but this backend.
    """

    name: str
    load: Callable[[], type[Sandbox]]
    spec_options: Callable[[SpecFields], dict[str, Any]]
    probe: Callable[[str], BackendStatus]
    settle: Callable[[dict[str, Any]], dict[str, Any]] = _as_given

    def make(self, **options: Any) -> Sandbox:
        """The sandbox built with ``options`` (its constructor's keywords); a keyword the
        constructor does not take raises ``SandboxError`` naming those it does."""
        cls = self.load()
        options = self.settle(dict(options))
        signature = inspect.signature(cls)
        try:
            signature.bind(**options)
        except TypeError as exc:
            accepted = ", ".join(signature.parameters) or "none"
            raise SandboxError(f"bad options for the {self.name} sandbox: {exc} "
                               f"(accepted: {accepted})") from None
        return cls(**options)


def _docker() -> type[Sandbox]:
    from ._docker import DockerSandbox

    return DockerSandbox


def _bwrap() -> type[Sandbox]:
    from ._bwrap import BwrapSandbox

    return BwrapSandbox


def _process() -> type[Sandbox]:
    from ._process import ProcessSandbox

    return ProcessSandbox


def _bwrap_root(options: dict[str, Any]) -> dict[str, Any]:
    """``root="auto"`` (the default): the built root filesystem if there is one, else None
    (the host's system directories)."""
    if options.get("root", "auto") == "auto":
        options["root"] = _default_rootfs(options.get("build_hint", DEFAULT_BUILD_HINT))
    return options


def _default_rootfs(build_hint: str) -> Path | None:
    path = rootfs_path()
    if path.is_dir():
        return path
    logger.info("bwrap: no sandbox root filesystem at %s, using the host's system directories "
                "(%s)", path, build_hint)
    return None


#: Every backend, by name, in the order ``SANDBOX_KINDS`` lists them.
BACKENDS: Mapping[str, Backend] = MappingProxyType({b.name: b for b in (
    Backend("docker", _docker,
            lambda spec: {"warm": spec.warm, "build_hint": spec.build_hint}, probe_docker),
    Backend("bwrap", _bwrap, lambda spec: {"build_hint": spec.build_hint}, probe_bwrap,
            settle=_bwrap_root),
    Backend("process", _process, lambda spec: {}, probe_process),
)})
SANDBOX_KINDS: tuple[str, ...] = tuple(BACKENDS)


def unknown_name(what: str, name: object, choices: Iterable[str]) -> SandboxError:
    """The error for a name that is none of ``choices``, with the closest one if any."""
    choices = tuple(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return SandboxError(f"unknown {what} {name!r}{hint} (choose one of {', '.join(choices)})")


def backend(name: str) -> Backend:
    """The backend called ``name``, or a ``SandboxError`` naming the closest one."""
    if name not in SANDBOX_KINDS:  # a tuple test: an unhashable name is unknown, not a TypeError
        raise unknown_name("sandbox backend", name, SANDBOX_KINDS)
    return BACKENDS[name]


def make_sandbox(kind: str, **options: Any) -> Sandbox:
    """A sandbox of ``kind`` built with ``options`` (the backend constructor's keywords).

    * ``docker``: ``DockerSandbox(image=None, warm=0, ..., build_hint=...)``, see ``_docker``.
    * ``bwrap``: ``BwrapSandbox(root="auto", ..., build_hint=...)``; ``root="auto"`` (the
      default) uses the default root filesystem (``rootfs_path()``) when it has been
      built, else the host's system directories; ``root=None`` always the host's; a path
      that root filesystem.
    * ``process``: ``ProcessSandbox()``, no isolation (it logs a warning).

    An unknown kind or option raises ``SandboxError`` naming what is accepted.
    """
    return backend(kind).make(**options)


def check_backend(name: str, *, build_hint: str = DEFAULT_BUILD_HINT) -> BackendStatus:
    """Whether the backend ``name`` can run jobs here, probing that backend only.

    ``build_hint`` ends the detail when its image or root filesystem is missing.
    """
    return backend(name).probe(build_hint)


def check_backends(*, build_hint: str = DEFAULT_BUILD_HINT) -> list[BackendStatus]:
    """The status of every backend, in ``SANDBOX_KINDS`` order."""
    return [check_backend(name, build_hint=build_hint) for name in SANDBOX_KINDS]
