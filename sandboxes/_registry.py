"""``make_sandbox(kind, **options)``: one way to get a backend by name.

Backends are imported when asked for, so that choosing ``bwrap`` never
imports the docker SDK.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from pathlib import Path
from typing import Any

from ._base import Sandbox, SandboxError

logger = logging.getLogger(__name__)

SANDBOX_KINDS = ("docker", "bwrap", "process")


def make_sandbox(kind: str, **options: Any) -> Sandbox:
    """A sandbox of ``kind`` built with ``options`` (the backend constructor's keywords).

    * ``docker``: ``DockerSandbox(image=None, warm=0, ...)``, see ``sandboxes._docker``.
    * ``bwrap``: ``BwrapSandbox(root="auto", ...)``; ``root="auto"`` (the
      default) uses the default root filesystem (``sandboxes._images.rootfs_path()``)
      when ``evolve sandbox build`` has built it, else the host's system
      directories; ``root=None`` always the host's; a path that root filesystem.
    * ``process``: ``ProcessSandbox()``, no isolation (it logs a warning).

    An unknown kind or option raises ``SandboxError`` naming what is accepted.
    """
    if kind == "docker":
        from ._docker import DockerSandbox

        return _build(kind, DockerSandbox, options)
    if kind == "bwrap":
        from ._bwrap import BwrapSandbox

        options = dict(options)
        if options.get("root", "auto") == "auto":
            options["root"] = _default_rootfs()
        return _build(kind, BwrapSandbox, options)
    if kind == "process":
        from ._process import ProcessSandbox

        return _build(kind, ProcessSandbox, options)
    close = difflib.get_close_matches(str(kind), SANDBOX_KINDS, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SandboxError(f"unknown sandbox kind {kind!r}{hint} "
                       f"(choose one of {', '.join(SANDBOX_KINDS)})")


def _build(kind: str, cls: type[Sandbox], options: dict[str, Any]) -> Sandbox:
    signature = inspect.signature(cls)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters) or "none"
        raise SandboxError(f"bad options for the {kind} sandbox: {exc} "
                           f"(accepted: {accepted})") from None
    return cls(**options)


def _default_rootfs() -> Path | None:
    from ._images import rootfs_path

    path = rootfs_path()
    if path.is_dir():
        return path
    logger.info("bwrap: no sandbox root filesystem at %s, using the host's system directories "
                "(build one with `evolve sandbox build`)", path)
    return None
