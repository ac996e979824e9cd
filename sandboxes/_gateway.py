"""The LLM gateway: sandboxed agents reach the run's LLM through a metered unix socket.

A sandbox has no network and no API key. Instead, each candidate gets a
:class:`GatewaySession`: an OpenAI-compatible HTTP/1.1 endpoint on its own unix
socket (mounted into the sandbox at ``LLM_SOCKET``) serving

- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (forwarded to the
  run's LLM client through the injected ``forward`` callable, after the body
  is rebuilt from a whitelist, see ``_gateway_request.py``), and
- ``GET /v1/models`` (answered by the gateway).

Streaming is refused; the model is always one the gateway serves. Errors are
JSON in OpenAI's format ``{"error": {"message", "type", "param", "code"}}``.

Budget semantics. A session meters ``prompt_tokens + completion_tokens`` from
the ``usage`` of every response. With a ``token_budget``, requests of the
session are answered one at a time; a request is admitted while the tokens used
are below the budget, and its ``max_tokens`` is clamped to what remains (and to
``max_tokens_cap``; a request without ``max_tokens`` gets that clamp as its
``max_tokens``). The admitted request is answered in full and charged in full,
so the request that crosses the budget crosses it by at most its own prompt
tokens (or, if a server ignored ``max_tokens``, its own response's tokens);
every later request is refused with HTTP 429, error type
``token_budget_exceeded``. Hence ``usage.total_tokens <= token_budget + the
tokens of one response``. Unbudgeted sessions answer requests concurrently.

    gateway = LLMGateway(forward, ["task-model"], on_usage=record)
    async with gateway.session("cand-42", token_budget=20_000) as session:
        result = await asyncio.to_thread(sandbox.run, Job(..., llm_socket=session.socket_path))
    session.usage  # also passed to record("cand-42", usage) when the session closed
"""

from __future__ import annotations

import asyncio
import importlib.resources
import inspect
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._base import SandboxError
from ._gateway_http import HEAD_LIMIT, GatewayHTTPError, Request, read_request, write_response
from ._gateway_request import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    MODELS_PATH,
    clean_body,
    models_body,
    openai_completion,
    usage_of,
)

__all__ = ["Forward", "GatewaySession", "GatewayUsage", "LLMGateway", "UpstreamError",
           "guest_client_files", "openai_completion"]

logger = logging.getLogger(__name__)

#: ``forward(path, body) -> response``: path is ``/v1/chat/completions`` or ``/v1/completions``.
Forward = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
#: ``on_usage(key, usage)``, called once when a session closes; may be a coroutine function.
UsageCallback = Callable[[str, "GatewayUsage"], Awaitable[None] | None]

_GUEST_MODULE = "cladeforge_llm.py"
_SUN_PATH_MAX = 107  # bytes of a unix socket path, without the trailing NUL


class UpstreamError(Exception):
    """Raised by a ``forward`` callable to answer the agent with this message and status.

    Any other exception from ``forward`` becomes a 502 whose message names only
    the exception's class, so that host details (URLs, keys) never reach the
    sandbox. Use this one for a message that is safe to show, e.g. a 400 "the
    prompt is longer than the model's context".
    """

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status if 400 <= status <= 599 else 502


@dataclass(frozen=True)
class GatewayUsage:
    """What one session used.

    ``requests`` were answered by the LLM and cost ``prompt_tokens +
    completion_tokens``; ``refused`` were turned away because the token budget
    was spent; ``failed`` got no answer from the LLM (forward failed or timed out).
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: int = 0
    failed: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMGateway:
    """Serves the run's LLM to sandboxed agents, one unix socket per candidate session.

    ``forward(path, body)`` sends a whitelisted OpenAI request body to the run's
    LLM and returns the OpenAI-shaped JSON response (with ``usage``); see
    :func:`openai_completion` for building one from a client's completion.
    ``models`` are the model names the gateway serves (the first is used when
    the agent names another). ``on_usage(key, usage)`` is called when a session
    closes, sync or async. ``max_body_bytes`` caps a request body (413 above).
    ``socket_dir`` is where sessions make their private directories (default:
    the system temp dir; a unix socket path must stay under 108 bytes).
    ``request_timeout`` (seconds, None: none) bounds one forward call (504).

    Sessions work without starting the gateway; ``async with gateway`` (or
    ``aclose()``) closes the sessions still open when it ends.
    """

    def __init__(self, forward: Forward, models: Sequence[str], *,
                 on_usage: UsageCallback | None = None, max_body_bytes: int = 1 << 20,
                 socket_dir: str | None = None, request_timeout: float | None = None) -> None:
        if not models:
            raise ValueError("an LLM gateway needs at least one model name")
        self.forward = forward
        self.models: tuple[str, ...] = tuple(models)
        self.on_usage = on_usage
        self.max_body_bytes = max_body_bytes
        self.socket_dir = socket_dir
        self.request_timeout = request_timeout
        self._sessions: set[GatewaySession] = set()

    def __repr__(self) -> str:
        return f"LLMGateway(models={list(self.models)!r}, open_sessions={len(self._sessions)})"

    def session(self, key: str, token_budget: int | None = None,
                max_tokens_cap: int | None = None, seed: int | None = None) -> GatewaySession:
        """A new session for candidate ``key`` (use it with ``async with``).

        ``token_budget`` caps prompt + completion tokens over the session (None:
        unlimited); ``max_tokens_cap`` caps ``max_tokens`` of each request.
        ``seed``: a request that names no seed gets ``seed + n`` (n counts the
        session's seeded requests from 0), so that two sessions making the same
        request (two children of one parent) get different samples, reproducibly.
        """
        if token_budget is not None and token_budget < 0:
            raise ValueError(f"token_budget must be >= 0 or None, got {token_budget}")
        if max_tokens_cap is not None and max_tokens_cap < 1:
            raise ValueError(f"max_tokens_cap must be >= 1 or None, got {max_tokens_cap}")
        return GatewaySession(self, key, token_budget, max_tokens_cap, seed)

    async def __aenter__(self) -> LLMGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every session still open (each reports its usage)."""
        for session in list(self._sessions):
            await session.close()


class GatewaySession:
    """One candidate's socket and meter; made by :meth:`LLMGateway.session`.

    ``start()`` (or ``async with``) creates a private directory (mode 0711: not
    listable by others) holding a socket with an unguessable name (mode 0666, so
    that the sandbox's unprivileged user can connect once it is mounted).
    ``close()`` stops serving (requests in flight are cancelled and not
    charged), removes the socket and its directory, and reports the usage.
    """

    def __init__(self, gateway: LLMGateway, key: str, token_budget: int | None,
                 max_tokens_cap: int | None, seed: int | None = None) -> None:
        self.gateway = gateway
        self.key = key
        self.token_budget = token_budget
        self.max_tokens_cap = max_tokens_cap
        self.seed = seed
        self._seeded = 0  # requests given a seed so far
        self.connections = 0  # connections accepted so far
        self._counts = dict.fromkeys(GatewayUsage.__dataclass_fields__, 0)
        self._dir: str | None = None
        self._path: str | None = None
        self._server: asyncio.Server | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (f"GatewaySession(key={self.key!r}, token_budget={self.token_budget}, "
                f"socket_path={self._path!r}, usage={self.usage})")

    @property
    def socket_path(self) -> str:
        """The socket's host path (for ``Job.llm_socket``)."""
        if self._path is None:
            raise RuntimeError("the gateway session is not started")
        return self._path

    @property
    def usage(self) -> GatewayUsage:
        """What the session used so far (final once closed)."""
        return GatewayUsage(**self._counts)

    @property
    def remaining(self) -> int | None:
        """Tokens left in the budget (never negative), or None without a budget."""
        if self.token_budget is None:
            return None
        return max(0, self.token_budget - self._counts["prompt_tokens"]
                   - self._counts["completion_tokens"])

    async def __aenter__(self) -> GatewaySession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Create the socket and start accepting connections."""
        if self._closed:
            raise RuntimeError("a closed gateway session cannot be started again")
        if self._server is not None:
            return
        base = self.gateway.socket_dir
        try:
            directory = tempfile.mkdtemp(prefix="cladeforge-llm-", dir=base)
        except OSError as exc:
            raise SandboxError(f"cannot create the LLM gateway's socket directory in "
                               f"{base or tempfile.gettempdir()}: {exc}") from exc
        self._dir = directory
        path = os.path.join(directory, f"{secrets.token_hex(8)}.sock")
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            self._remove_files()
            raise SandboxError(f"the LLM gateway socket path {path!r} is longer than a unix "
                               f"socket allows ({_SUN_PATH_MAX} bytes); set the gateway's "
                               f"socket_dir to a shorter directory")
        os.chmod(directory, 0o711)
        self._lock = asyncio.Lock()
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=path,
                                                           limit=HEAD_LIMIT)
            os.chmod(path, 0o666)
        except OSError as exc:
            self._remove_files()
            raise SandboxError(f"cannot open the LLM gateway socket {path}: {exc}") from exc
        self._path = path
        self.gateway._sessions.add(self)
        logger.debug("LLM gateway session %r on %s (token budget %s)", self.key, path,
                     self.token_budget)

    async def close(self) -> None:
        """Stop serving, remove the socket, and call the gateway's ``on_usage``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        server, self._server = self._server, None
        if server is None:
            return  # never started: nothing was served, nothing to report
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        self._remove_files()
        self.gateway._sessions.discard(self)
        usage = self.usage
        logger.debug("LLM gateway session %r closed: %s", self.key, usage)
        if self.gateway.on_usage is not None:
            result = self.gateway.on_usage(self.key, usage)
            if inspect.isawaitable(result):
                await result

    def _remove_files(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    # -- serving ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    request = await read_request(reader, writer, self.gateway.max_body_bytes)
                except GatewayHTTPError as exc:
                    await write_response(writer, exc.status, exc.body(), keep_alive=False)
                    break
                if request is None:
                    break
                try:
                    status, payload = await self._dispatch(request)
                    keep = request.keep_alive
                except GatewayHTTPError as exc:
                    status, payload, keep = exc.status, exc.body(), request.keep_alive
                await write_response(writer, status, payload, keep_alive=keep)
                if not keep:
                    break
        except (ConnectionError, OSError):
            pass  # the agent went away; nothing to answer
        except asyncio.CancelledError:
            if not self._closed:
                raise
            # cancelled by close(): end quietly (asyncio logs a cancelled connection task)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _dispatch(self, request: Request) -> tuple[int, Any]:
        routes = {MODELS_PATH: "GET", CHAT_PATH: "POST", COMPLETIONS_PATH: "POST"}
        method = routes.get(request.path.rstrip("/"))
        if method is None:
            raise GatewayHTTPError(
                404, f"unknown endpoint {request.path[:80]!r}; the Cladeforge LLM gateway "
                f"serves POST {CHAT_PATH}, POST {COMPLETIONS_PATH} and GET {MODELS_PATH}",
                code="unknown_endpoint")
        if request.method != method:
            raise GatewayHTTPError(405, f"{request.path} takes {method}, not {request.method}",
                                   code="method_not_allowed")
        if method == "GET":
            return 200, models_body(self.gateway.models)
        try:
            raw = json.loads(request.body)
        except ValueError as exc:
            raise GatewayHTTPError(400, f"the request body is not valid JSON: {exc}",
                                   code="invalid_json") from exc
        body = clean_body(request.path.rstrip("/"), raw, self.gateway.models)
        if self.seed is not None and "seed" not in body:
            body["seed"] = self.seed + self._seeded
            self._seeded += 1
        if self.token_budget is None:
            return 200, await self._complete(request.path.rstrip("/"), body)
        assert self._lock is not None
        async with self._lock:
            return 200, await self._complete(request.path.rstrip("/"), body)

    async def _complete(self, path: str, body: dict[str, Any]) -> Mapping[str, Any]:
        remaining = self.remaining
        if remaining is not None and remaining <= 0:
            self._counts["refused"] += 1
            c = self._counts
            raise GatewayHTTPError(
                429, f"token budget exceeded: this candidate may use {self.token_budget} LLM "
                f"tokens (prompt + completion) and has used {c['prompt_tokens']} + "
                f"{c['completion_tokens']} = {c['prompt_tokens'] + c['completion_tokens']} in "
                f"{c['requests']} requests; no further LLM requests will be answered",
                type_="token_budget_exceeded", code="token_budget_exceeded")
        limits = [x for x in (body.get("max_tokens"), self.max_tokens_cap, remaining)
                  if x is not None]
        if limits:
            body["max_tokens"] = min(limits)
        try:
            async with asyncio.timeout(self.gateway.request_timeout):
                response = await self.gateway.forward(path, body)
        except UpstreamError as exc:
            self._counts["failed"] += 1
            raise GatewayHTTPError(exc.status, str(exc), type_="upstream_error",
                                   code="upstream_error") from exc
        except TimeoutError as exc:
            self._counts["failed"] += 1
            limit = self.gateway.request_timeout
            within = "" if limit is None else f" within {limit:g} s"
            raise GatewayHTTPError(504, f"the run's LLM did not answer{within}",
                                   type_="upstream_error", code="upstream_timeout") from exc
        except Exception as exc:  # noqa: BLE001 - any failure of the host's client is a 502
            self._counts["failed"] += 1
            logger.warning("LLM gateway session %r: forwarding %s failed: %s", self.key, path,
                           exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            raise GatewayHTTPError(
                502, f"the run's LLM could not answer this request ({type(exc).__name__}); "
                "the details are in the run's log", type_="upstream_error",
                code="upstream_failed") from exc
        if not isinstance(response, Mapping):
            self._counts["failed"] += 1
            raise GatewayHTTPError(502, "the run's LLM answered with something that is not a "
                                   "JSON object", type_="upstream_error", code="upstream_failed")
        prompt, completion = usage_of(response)
        self._counts["requests"] += 1
        self._counts["prompt_tokens"] += prompt
        self._counts["completion_tokens"] += completion
        return response


def guest_client_files() -> dict[str, bytes]:
    """The guest helper as ``Job.files`` entries: ``{"cladeforge_llm.py": source}``.

    Put at the work dir's root, agent code run from there can ``import cladeforge_llm``.
    """
    source = importlib.resources.files(__package__).joinpath("guest", _GUEST_MODULE)
    return {_GUEST_MODULE: source.read_bytes()}
