"""What every managed inference server shares, and servers run as subprocesses.

A managed server is an async context manager exposing ``base_url`` (with the
``/v1`` prefix), ``model`` and ``api_key``; ``client()`` makes an
:class:`~evolve.llm.LLMClient` for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from evolve._errors import ServerStartError
from evolve.llm._client import LLMClient
from evolve.llm._http import HTTPPool

__all__ = ["ManagedServer", "SubprocessServer", "free_port", "wait_healthy"]

logger = logging.getLogger(__name__)


class ManagedServer(ABC):
    """An OpenAI-compatible inference server the framework starts and stops.

    ``grammar_field``: the request field in which it takes a GBNF grammar that
    constrains the answer (None: it takes none).
    """

    grammar_field: str | None = None

    @property
    @abstractmethod
    def base_url(self) -> str:
        """``http://host:port/v1``; valid once started."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model name clients send."""

    @property
    def api_key(self) -> str | None:
        """The API key clients must send, if any (kept in memory only)."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Start the server and return once it answers health checks."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the server; safe to call twice or before ``start``."""

    async def __aenter__(self) -> ManagedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def client(self, **options: Any) -> LLMClient:
        """An :class:`LLMClient` for this server (options as for ``LLMClient``; the
        server's ``grammar_field`` unless given)."""
        options.setdefault("grammar_field", self.grammar_field)
        return LLMClient(self.base_url, self.model, api_key=self.api_key, **options)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


async def wait_healthy(base_url: str, *, timeout: float, what: str = "server",
                       alive: Callable[[], str | None] | None = None) -> None:
    """Poll ``GET /health`` (or ``GET {base_url}/models``) until it answers 200.

    ``alive`` returns a reason when the server is known to be dead (e.g. its
    process exited), which ends the wait at once. Raises
    :class:`ServerStartError` on death or after ``timeout`` seconds.
    """
    split = urlsplit(base_url)
    pool = HTTPPool(f"{split.scheme}://{split.netloc}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, interval = "no answer yet", 0.02
    try:
        while True:
            problem = alive() if alive is not None else None
            if problem:
                raise ServerStartError(f"{what} {problem} before it became healthy")
            try:
                async with asyncio.timeout(10):
                    response = await pool.request("GET", "/health")
                    if response.status == 404:
                        response = await pool.request("GET", split.path.rstrip("/") + "/models")
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
            except TimeoutError:
                last = "health check timed out"
            except OSError as exc:
                last = str(exc) or exc.__class__.__name__
            if loop.time() >= deadline:
                raise ServerStartError(f"{what} at {base_url} did not become healthy within "
                                       f"{timeout:g} s (last check: {last})")
            await asyncio.sleep(interval)
            interval = min(interval * 2, 0.5)
    finally:
        await pool.aclose()


def _log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return ""
    if not tail:
        return f"\n(its log {path} is empty)"
    return f"\nlast lines of its log {path}:\n" + "\n".join("  " + line for line in tail)


class SubprocessServer(ManagedServer):
    """A server run as a child process in its own process group.

    ``command`` may contain ``{host}`` and ``{port}``, replaced at start (a free
    port is chosen when ``port`` is None). The output goes to ``log_path`` (a
    temporary file when None). ``start`` waits for the health check, reporting
    an early exit with the last lines of the log; ``stop`` sends SIGTERM to the
    whole group, then SIGKILL after ``stop_timeout`` seconds.
    """

    def __init__(self, command: Sequence[str], *, model: str, host: str = "127.0.0.1",
                 port: int | None = None, startup_timeout: float = 900.0,
                 stop_timeout: float = 30.0, log_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, name: str = "server") -> None:
        self.command = tuple(command)
        self._model = model
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = Path(log_path) if log_path is not None else None
        self.env = env
        self.name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._bound_port: int | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self._model!r}, host={self.host!r}, "
                f"port={self._bound_port or self.port})")

    @property
    def model(self) -> str:
        return self._model

    @property
    def base_url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError(f"{self.name} is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def argv(self, port: int) -> list[str]:
        """The command line with ``{host}`` and ``{port}`` filled in."""
        return [arg.replace("{host}", self.host).replace("{port}", str(port))
                for arg in self.command]

    def _check_can_start(self) -> None:
        """Hook for subclasses: raise ServerStartError when the server cannot run here."""

    async def start(self) -> None:
        if self._proc is not None:
            return
        self._check_can_start()
        port = self.port if self.port is not None else free_port(self.host)
        if self.port is not None and port_in_use(self.host, port):
            raise ServerStartError(f"cannot start {self.name}: port {port} on {self.host} is "
                                   f"already in use; choose another port or leave it unset")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"cladeforge-{self.name}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        argv = self.argv(port)
        logger.info("starting %s: %s (log: %s)", self.name, " ".join(argv), self.log_path)
        env = None if self.env is None else {**os.environ, **self.env}
        try:
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True)
        except OSError as exc:
            raise ServerStartError(f"cannot start {self.name} ({argv[0]!r}): {exc}") from exc
        self._bound_port = port
        try:
            await wait_healthy(self.base_url, timeout=self.startup_timeout, what=self.name,
                               alive=self._exit_reason)
        except ServerStartError as exc:
            await self.stop()
            raise ServerStartError(f"{exc}{_log_tail(self.log_path)}") from None
        except BaseException:
            await self.stop()
            raise

    def _exit_reason(self) -> str | None:
        code = self._proc.poll() if self._proc is not None else None
        return None if code is None else f"exited with code {code}"

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        self._bound_port = None
        if proc is None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.stop_timeout
        while proc.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if proc.poll() is None:
            logger.warning("%s did not stop within %g s; killing it", self.name,
                           self.stop_timeout)
        _signal_group(proc.pid, signal.SIGKILL)  # also reaps children left in the group
        await asyncio.to_thread(proc.wait)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
