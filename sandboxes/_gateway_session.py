"""One candidate's LLM gateway session: its socket, request handling and token meter.

See ``_gateway.py`` for the budget semantics and the limits; the HTTP server
itself is ``_gateway_server.py``, the request whitelist ``_gateway_request.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ._base import SandboxError
from ._gateway_request import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    MODELS_PATH,
    REQUEST_OVERHEAD_TOKENS,
    GatewayHTTPError,
    models_body,
    parse_body,
    prompt_token_bound,
    usage_of,
)
from ._gateway_server import (
    ConnectionGate,
    ProblemLog,
    ReadHold,
    ServerLimits,
    SessionServer,
    json_response,
)

__all__ = ["Forward", "GatewaySession", "GatewayUsage", "TokenCounter", "UpstreamError",
           "UsageCallback"]

logger = logging.getLogger("sandboxes._gateway")

#: ``forward(path, body) -> response``: path is ``/v1/chat/completions`` or ``/v1/completions``.
Forward = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]
#: ``count_tokens(path, body) -> n``: the prompt tokens the LLM will count for ``body``, or
#: None when it cannot tell (then the gateway's upper bound stands).
TokenCounter = Callable[[str, dict[str, Any]], Awaitable[int | None]]
#: ``on_usage(key, usage)``, called once when a session closes; may be a coroutine function.
UsageCallback = Callable[[str, "GatewayUsage"], Awaitable[None] | None]

_SUN_PATH_MAX = 107  # bytes of a unix socket path, without the trailing NUL
_ROUTES = {MODELS_PATH: "GET", CHAT_PATH: "POST", COMPLETIONS_PATH: "POST"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class SessionHost(Protocol):
    """What a session needs of its gateway (``LLMGateway``; a protocol here, so that the
    gateway module may import this one and not the other way round)."""

    forward: Forward
    count_tokens: TokenCounter | None
    models: tuple[str, ...]
    on_usage: UsageCallback | None
    max_body_bytes: int
    socket_dir: str | None
    request_timeout: float | None
    max_concurrent_requests: int
    read_timeout: float
    _limits: ServerLimits
    _gate: ConnectionGate
    _sessions: set[GatewaySession]


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
    completion_tokens``; ``refused`` were turned away because they did not fit
    in the token budget; ``failed`` got no answer from the LLM (forward failed
    or timed out).
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: int = 0
    failed: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class GatewaySession:
    """One candidate's socket and meter; made by :meth:`LLMGateway.session`.

    ``start()`` (or ``async with``) creates a private directory (mode 0711: not
    listable by others) holding a socket with an unguessable name (mode 0666, so
    that the sandbox's unprivileged user can connect once it is mounted).
    ``close()`` stops serving (requests in flight are cancelled and not
    charged), removes the socket and its directory, and reports the usage.
    """

    def __init__(self, gateway: SessionHost, key: str, token_budget: int | None,
                 max_tokens_cap: int | None, seed: int | None = None) -> None:
        self.gateway = gateway
        self.key = key
        self.token_budget = token_budget
        self.max_tokens_cap = max_tokens_cap
        self.seed = seed
        self._seeded = 0  # requests given a seed so far
        self._counts = dict.fromkeys(GatewayUsage.__dataclass_fields__, 0)
        self._problems = ProblemLog(logger, key)
        self._http = SessionServer(self._handle, gateway._limits, gateway._gate, self._problems)
        self._dir: str | None = None
        self._path: str | None = None
        self._slots: asyncio.Semaphore | None = None  # requests read or answered at once
        self._lock: asyncio.Lock | None = None  # one forward at a time under a budget
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dropped_noted = False
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return (f"GatewaySession(key={self.key!r}, token_budget={self.token_budget}, "
                f"socket_path={self._path!r}, usage={self.usage}, "
                f"open_connections={self._http.open_connections})")

    @property
    def socket_path(self) -> str:
        """The socket's host path (for ``Job.llm_socket``)."""
        if self._path is None:
            raise RuntimeError("the gateway session is not started")
        return self._path

    @property
    def connections(self) -> int:
        """Connections accepted so far (not counting those refused for a connection limit)."""
        return self._http.accepted

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
        if self._started:
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
        self._slots = asyncio.Semaphore(self.gateway.max_concurrent_requests)
        try:
            await self._http.start(path)
            os.chmod(path, 0o666)
        except OSError as exc:
            self._http.close()
            self._remove_files()
            raise SandboxError(f"cannot open the LLM gateway socket {path}: {exc}") from exc
        self._path = path
        self._started = True
        self.gateway._sessions.add(self)
        logger.debug("LLM gateway session %r on %s (token budget %s)", self.key, path,
                     self.token_budget)

    async def close(self) -> None:
        """Stop serving, remove the socket, and call the gateway's ``on_usage``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return  # never started: nothing was served, nothing to report
        self._http.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._remove_files()
        self.gateway._sessions.discard(self)
        self._problems.summary()
        usage = self.usage
        logger.debug("LLM gateway session %r closed: %s; %d connections served, %d refused",
                     self.key, usage, self._http.accepted, self._http.refused)
        if self.gateway.on_usage is not None:
            result = self.gateway.on_usage(self.key, usage)
            if inspect.isawaitable(result):
                await result

    def _remove_files(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    # -- serving ---------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        hold = ReadHold(request)
        try:
            try:
                status, payload = await self._answer(request, hold)
                response = json_response(status, payload)
            except GatewayHTTPError as exc:
                response = json_response(exc.status, exc.body(), close=exc.close)
            # written here, held: an agent that does not read its answers cannot make the
            # gateway parse and queue its pipelined requests meanwhile, and one that reads
            # none within the read timeout loses its connection
            hold.hold()
            try:
                async with asyncio.timeout(self.gateway.read_timeout):
                    await response.prepare(request)
                    await response.write_eof()
            except TimeoutError:
                request.protocol.force_close()
        except ConnectionError:
            pass  # the agent hung up; aiohttp ends the connection quietly
        finally:
            hold.release()
            self._tasks.discard(task)
        return response

    async def _answer(self, request: web.BaseRequest, hold: ReadHold) -> tuple[int, Any]:
        path = request.path.rstrip("/")
        method = _ROUTES.get(path)
        if method is None:
            raise GatewayHTTPError(
                404, f"unknown endpoint {request.path[:80]!r}; the Cladeforge LLM gateway "
                f"serves POST {CHAT_PATH}, POST {COMPLETIONS_PATH} and GET {MODELS_PATH}",
                code="unknown_endpoint")
        if request.method != method:
            raise GatewayHTTPError(405, f"{path} takes {method}, not {request.method[:20]}",
                                   code="method_not_allowed")
        if method == "GET":
            return 200, models_body(self.gateway.models)
        length = self._body_length(request)
        assert self._slots is not None and self._lock is not None
        if self._slots.locked():
            hold.hold()  # waiting for a slot
        async with self._slots:
            hold.release()
            data = await self._read_body(request, length)
            hold.hold()  # until the answer is written
            body, dropped = parse_body(path, data, self.gateway.models)
            del data
            if dropped and not self._dropped_noted:
                self._dropped_noted = True
                logger.debug("LLM gateway session %r: dropped request fields %s", self.key,
                             dropped[:20])
            if self.seed is not None and "seed" not in body:
                body["seed"] = self.seed + self._seeded
                self._seeded += 1
            if self.token_budget is None:
                return 200, await self._complete(path, body)
            async with self._lock:
                return 200, await self._complete(path, body)

    def _body_length(self, request: web.BaseRequest) -> int:
        headers = request.headers
        if "Transfer-Encoding" in headers:
            raise GatewayHTTPError(
                400, "chunked (or otherwise transfer-encoded) request bodies are not "
                "supported; send the whole JSON body with a Content-Length header",
                code="transfer_encoding_not_supported", close=True)
        if headers.get("Content-Encoding", "identity").lower() != "identity":
            raise GatewayHTTPError(415, "compressed request bodies are not supported; send "
                                   "plain JSON", code="encoding_not_supported", close=True)
        try:
            length = request.content_length or 0
        except ValueError:  # llhttp lets only decimal digits through; kept for its fallback
            raise GatewayHTTPError(400, "bad Content-Length", code="bad_content_length",
                                   close=True) from None
        limit = self.gateway.max_body_bytes
        if length > limit:
            raise GatewayHTTPError(
                413, f"request body of {length} bytes is larger than the gateway's limit of "
                f"{limit} bytes; send a shorter prompt", code="body_too_large", close=True)
        return length

    async def _read_body(self, request: web.BaseRequest, length: int) -> bytes:
        if length == 0:
            return b""
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(_CONTINUE)
        limit = self.gateway.read_timeout
        try:
            async with asyncio.timeout(limit):
                return await request.content.readexactly(length)
        except TimeoutError:
            raise GatewayHTTPError(408, f"the request body ({length} bytes) did not arrive "
                                   f"within {limit:g} s", code="request_timeout",
                                   close=True) from None
        except (asyncio.IncompleteReadError, ConnectionError, RequestPayloadError):
            raise GatewayHTTPError(400, "the request body ended before its Content-Length",
                                   code="incomplete_body", close=True) from None

    async def _admit(self, path: str, body: dict[str, Any]) -> int:
        """The tokens left for the completion of ``body``, or raise its refusal (400/429)."""
        budget, remaining = self.token_budget, self.remaining
        assert budget is not None and remaining is not None
        need = prompt_token_bound(body)
        if need >= remaining and remaining > REQUEST_OVERHEAD_TOKENS:
            need = await self._exact_prompt_tokens(path, body, need)
        if need < remaining:
            return remaining - need
        self._counts["refused"] += 1
        spent = remaining <= REQUEST_OVERHEAD_TOKENS  # not even an empty prompt fits
        if need >= budget and not spent:
            raise GatewayHTTPError(
                400, f"this prompt takes {need} tokens (the LLM's count, or at most its UTF-8 "
                f"bytes plus the chat template's), and this candidate's whole token budget is "
                f"{budget} tokens; "
                "send a shorter prompt", code="prompt_exceeds_token_budget")
        c = self._counts
        later = "no further LLM requests will be answered" if spent else "a shorter one may fit"
        raise GatewayHTTPError(
            429, f"token budget exceeded: this candidate may use {budget} LLM tokens (prompt + "
            f"completion) and has used {c['prompt_tokens']} + {c['completion_tokens']} = "
            f"{c['prompt_tokens'] + c['completion_tokens']} in {c['requests']} requests; "
            f"{remaining} remain, and this prompt takes up to {need} tokens plus at least "
            f"one completion token; {later}",
            type_="token_budget_exceeded", code="token_budget_exceeded")

    async def _exact_prompt_tokens(self, path: str, body: dict[str, Any], bound: int) -> int:
        """The LLM's own count of ``body``'s prompt tokens, or ``bound`` when it has none."""
        counter = self.gateway.count_tokens
        if counter is None:
            return bound
        try:
            async with asyncio.timeout(self.gateway.request_timeout):
                counted = await counter(path, body)
        except Exception as exc:  # noqa: BLE001 - counting is an optimisation; the bound stands
            self._problems(logging.WARNING, "counting the prompt tokens of %s failed: %s",
                           path, exc)
            return bound
        return bound if counted is None else counted

    async def _complete(self, path: str, body: dict[str, Any]) -> Mapping[str, Any]:
        room = None if self.token_budget is None else await self._admit(path, body)
        limits = [x for x in (body.get("max_tokens"), self.max_tokens_cap, room) if x is not None]
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
            self._problems(logging.WARNING, "forwarding %s failed: %s", path, exc,
                           exc_info=logger.isEnabledFor(logging.DEBUG))
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
