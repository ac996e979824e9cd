"""The LLM gateway's HTTP server: aiohttp's low-level server on one session's unix socket.

Parsing is aiohttp's (llhttp, in C): request line and header limits, framing,
keep-alive and a bounded pipelining queue come from a maintained server. This
module adds what a socket shared with untrusted code needs on top:

- connection caps, per session and across the gateway, enforced by the
  gateway's own accept loop on the listening socket: a connection over a cap
  is answered 503 and closed inside the accept call, so its file descriptor
  never outlives that call; at most ``_ACCEPT_BATCH`` connections are accepted
  per event-loop turn and the rest wait in the kernel's listen queue;
- every error aiohttp raises while parsing becomes a JSON error in OpenAI's
  format, logged through :class:`ProblemLog` (the first few per session, then
  counted), never through aiohttp's own loggers; there is no access log;
- :class:`ReadHold`: a connection is not read while its request waits for a
  slot, is answered, or its answer is written (only its head and body are
  read), so pipelined requests wait in the kernel, not in the process's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from ._gateway_request import error_body

__all__ = ["ConnectionGate", "ProblemLog", "ReadHold", "ServerLimits", "SessionServer",
           "default_max_connections", "json_response"]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

#: Connections the kernel queues for a session's socket before connecting ones fail.
_BACKLOG = 64
#: Connections accepted per event-loop turn on one socket.
_ACCEPT_BATCH = 16
#: Seconds an answered request's unread body is read and dropped before the connection
#: closes, so that a client still sending it sees the answer instead of a broken pipe.
_LINGER_SECONDS = 2.0
_HEADERS = {"Server": "cladeforge-llm-gateway"}
#: Stated even to HTTP/1.0 clients (aiohttp answers unparsable requests as HTTP/1.0).
_CLOSE_HEADERS = {**_HEADERS, "Connection": "close"}


def default_max_connections() -> int:
    """A quarter of the process's file-descriptor limit, at most 512 (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 512
    return max(16, min(512, soft // 4))


@dataclass(frozen=True)
class ServerLimits:
    """The HTTP-level limits of one session's server (see ``LLMGateway``)."""

    max_connections_per_session: int
    max_header_line_bytes: int
    max_headers: int
    keepalive_timeout: float


class ConnectionGate:
    """The open connections of all sessions of one gateway, counted against ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


class ProblemLog:
    """Logs the first ``limit`` problems of one session, then only counts them.

    A flood of malformed requests costs one line each up to the limit and one
    summary line (:meth:`summary`) when the session closes.
    """

    def __init__(self, logger: logging.Logger, key: str, limit: int = 10) -> None:
        self.logger = logger
        self.key = key
        self.limit = limit
        self.count = 0

    def __call__(self, level: int, message: str, *args: Any,
                 exc_info: BaseException | bool | None = None) -> None:
        self.count += 1
        if self.count <= self.limit:
            self.logger.log(level, "LLM gateway session %r: " + message, self.key, *args,
                            exc_info=exc_info)

    def summary(self) -> None:
        """One line for the problems not logged, if any."""
        if self.count > self.limit:
            self.logger.warning("LLM gateway session %r: %d more problems (malformed requests, "
                                "refused connections) were not logged", self.key,
                                self.count - self.limit)


def json_response(status: int, payload: Any, close: bool = False) -> web.Response:
    """A JSON response; ``close`` ends the connection after it."""
    response = web.Response(body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                            status=status, content_type="application/json",
                            headers=_CLOSE_HEADERS if close else _HEADERS)
    if close:
        response.force_close()
    return response


class ReadHold:
    """Keeps one request's connection unread while held (pipelined data waits in the kernel).

    Only a connection being read is paused, and :meth:`release` resumes only
    what :meth:`hold` paused, so aiohttp's own flow control is left alone.
    """

    __slots__ = ("_request", "_transport")

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request
        self._transport: asyncio.Transport | None = None

    def hold(self) -> None:
        transport = self._request.transport
        if (self._transport is None and transport is not None and not transport.is_closing()
                and transport.is_reading()):
            transport.pause_reading()
            self._transport = transport

    def release(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None and not transport.is_closing():
            transport.resume_reading()


def _refusal(message: str) -> bytes:
    body = json.dumps(error_body(message, "server_error", "too_many_connections")).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nServer: cladeforge-llm-gateway\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


class _Protocol(RequestHandler):
    """aiohttp's connection handler, counted by its session, answering errors in JSON."""

    __slots__ = ("_owner",)

    def __init__(self, owner: SessionServer, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self not in self._owner._open:  # the session closed while this one was attached
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._owner._release(self)
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        self._owner.problems(logging.ERROR, *args, **kwargs)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status < 500:  # the request could not be parsed: the client's mistake
            text = str(getattr(exc, "message", "") or message or type(exc).__name__)
            text = " ".join(text.split())[:200]  # one line, whatever the client sent
            code = "bad_request"
            if isinstance(exc, LineTooLong):
                status, code = 431, "headers_too_large"
            self._owner.problems(logging.DEBUG, "malformed HTTP request (%s)", text)
            payload = error_body(f"malformed HTTP request: {text}", "invalid_request_error",
                                 code)
        else:
            self._owner.problems(logging.ERROR, "answering a request failed", exc_info=exc)
            payload = error_body("the LLM gateway failed to answer this request; the details "
                                 "are in the run's log", "server_error", "internal_error")
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already; the connection is broken")
        return json_response(status, payload, close=True)


class SessionServer:
    """Serves ``handler`` on one unix socket, under ``limits`` and the gateway's ``gate``."""

    def __init__(self, handler: Handler, limits: ServerLimits, gate: ConnectionGate,
                 problems: ProblemLog) -> None:
        self.handler = handler
        self.limits = limits
        self.gate = gate
        self.problems = problems
        self.accepted = 0  # connections served so far
        self.refused = 0  # connections answered 503 for a cap
        self._open: set[_Protocol] = set()
        self._manager: web.Server | None = None
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attaching: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def start(self, path: str) -> None:
        """Listen on ``path`` (raises ``OSError``)."""
        loop = self._loop = asyncio.get_running_loop()
        # handler_cancellation stays off: an agent hanging up does not cancel an answer
        # being computed, which is then charged (no free tokens by disconnecting).
        self._manager = web.Server(self.handler, loop=loop)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(_BACKLOG)
            listener.setblocking(False)
            loop.add_reader(listener.fileno(), self._accept)
        except BaseException:
            listener.close()
            raise
        self._listener = listener

    def close(self) -> None:
        """Stop listening and close every connection (its request handlers keep running)."""
        listener, self._listener = self._listener, None
        if listener is not None and self._loop is not None:
            self._loop.remove_reader(listener.fileno())
            listener.close()
        for protocol in list(self._open):
            protocol.force_close()
            self._release(protocol)

    def _accept(self) -> None:
        listener = self._listener
        for _ in range(_ACCEPT_BATCH):
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors or memory: the queue waits
                self.problems(logging.WARNING, "accepting a connection failed: %s", exc)
                return
            refusal = self._over_limit()
            if refusal is None:
                self._serve(conn)
            else:
                self._refuse(conn, refusal)

    def _over_limit(self) -> str | None:
        open_here, gate = len(self._open), self.gate
        if open_here >= self.limits.max_connections_per_session:
            return (f"this candidate has {open_here} connections open to the LLM gateway, its "
                    "limit; close idle connections (or reuse one)")
        if gate.open >= gate.limit:
            return (f"the LLM gateway has {gate.open} connections open, its limit for all "
                    "candidates; retry later")
        return None

    def _refuse(self, conn: socket.socket, message: str) -> None:
        self.refused += 1
        self.problems(logging.WARNING, "connection refused: %s", message)
        try:
            conn.setblocking(False)
            conn.send(_refusal(message))
        except OSError:
            pass  # the agent is gone or its socket is full: closing is answer enough
        finally:
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        assert self._manager is not None and self._loop is not None
        limits = self.limits
        protocol = _Protocol(
            self, self._manager, loop=self._loop, keepalive_timeout=limits.keepalive_timeout,
            tcp_keepalive=False, logger=self.problems.logger, access_log=None,
            max_line_size=limits.max_header_line_bytes,
            max_field_size=limits.max_header_line_bytes, max_headers=limits.max_headers,
            lingering_time=_LINGER_SECONDS, auto_decompress=False)
        self._open.add(protocol)
        self.gate.open += 1
        self.accepted += 1
        task = self._loop.create_task(self._attach(conn, protocol))
        self._attaching.add(task)
        task.add_done_callback(self._attaching.discard)

    async def _attach(self, conn: socket.socket, protocol: _Protocol) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except BaseException as exc:
            conn.close()
            self._release(protocol)
            if not isinstance(exc, OSError):
                raise

    def _release(self, protocol: _Protocol) -> None:
        if protocol in self._open:
            self._open.discard(protocol)
            self.gate.open -= 1
