"""The LLM gateway: sandboxed agents reach the run's LLM through a metered unix socket.

A sandbox has no network and no API key. Instead, each candidate gets a
:class:`GatewaySession`: an OpenAI-compatible HTTP/1.1 endpoint on its own unix
socket (mounted into the sandbox at ``LLM_SOCKET``) serving

- ``POST /v1/chat/completions`` and ``POST /v1/completions`` (forwarded to the
  run's LLM client through the injected ``forward`` callable, after the body
  is rebuilt from a whitelist, see ``_gateway_request.py``), and
- ``GET /v1/models`` (answered by the gateway).

Streaming is refused; the model is always one the gateway serves. Errors are
JSON in OpenAI's format ``{"error": {"message", "type", "param", "code"}}``,
malformed HTTP included.

Server stack. HTTP is served by aiohttp's low-level server (``_gateway_server.py``):
its llhttp parser has line, header and pipelining limits, it runs on the run's
own event loop (no thread, no second server process), and connections can be
capped before any byte is read. The agent is untrusted, so every resource it
can hold is bounded, per session: open connections (more are answered 503 and
closed at once), requests read or answered at once, body bytes (413), header
lines and count (431/400), the time to send a request (its head within
``keepalive_timeout`` of the connection's opening or previous answer, its body
within ``read_timeout`` after the head, else 408) and to take in an answer,
idle keep-alive time; and across sessions, open connections, so that the run
process keeps file descriptors for itself whatever the number of sessions. A
connection is not read while its request waits for a slot or is answered.
Memory held per session is then about ``max_concurrent_requests`` x 2 x
``max_body_bytes`` plus ``max_connections_per_session`` x (one head and a few
hundred KiB of buffered data).

Budget semantics. A session meters ``prompt_tokens + completion_tokens`` from
the ``usage`` of every response. With a ``token_budget``, requests of the
session are answered one at a time. Before forwarding, the gateway bounds the
request's prompt from above by ``E`` = the UTF-8 bytes of its texts +
``MESSAGE_OVERHEAD_TOKENS`` (8) per message + ``REQUEST_OVERHEAD_TOKENS`` (32)
(a byte-level BPE token covers at least one byte). When ``E`` does not fit in
what remains and the gateway has a ``count_tokens`` (the LLM server's own
tokenizer with its chat template: the run's client asks vLLM's or llama.cpp's
``/tokenize``), its exact count replaces ``E``. The request is forwarded
only if ``E`` + 1 completion token fits in what remains, with ``max_tokens``
clamped to ``remaining - E`` (and to ``max_tokens_cap``; a request without
``max_tokens`` gets that clamp as its ``max_tokens``). Otherwise it is refused
without reaching the LLM: HTTP 429, error type ``token_budget_exceeded`` (or
400 ``prompt_exceeds_token_budget`` when the prompt could not fit even in the
whole budget). Hence ``usage.total_tokens <= token_budget`` whenever the
server honours ``max_tokens`` and counts at most ``E`` prompt tokens; if it
does not, the one request that crosses the budget crosses it by at most its
own excess (prompt tokens over ``E`` plus completion tokens over ``max_tokens``),
and every later request is refused. Unbudgeted sessions answer requests
concurrently.

    gateway = LLMGateway(forward, ["task-model"], on_usage=record)
    async with gateway.session("cand-42", token_budget=20_000) as session:
        result = await asyncio.to_thread(sandbox.run, Job(..., llm_socket=session.socket_path))
    session.usage  # also passed to record("cand-42", usage) when the session closed
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence

from ._gateway_request import openai_completion
from ._gateway_server import ConnectionGate, ServerLimits, default_max_connections
from ._gateway_session import (
    Forward,
    GatewaySession,
    GatewayUsage,
    TokenCounter,
    UpstreamError,
    UsageCallback,
)

__all__ = ["Forward", "GatewaySession", "GatewayUsage", "LLMGateway", "TokenCounter",
           "UpstreamError", "guest_client_files", "openai_completion"]

_GUEST_MODULE = "cladeforge_llm.py"


class LLMGateway:
    """Serves the run's LLM to sandboxed agents, one unix socket per candidate session.

    ``forward(path, body)`` sends a whitelisted OpenAI request body to the run's
    LLM and returns the OpenAI-shaped JSON response (with ``usage``); see
    :func:`openai_completion` for building one from a client's completion.
    ``models`` are the model names the gateway serves (the first is used when
    the agent names another). ``on_usage(key, usage)`` is called when a session
    closes, sync or async. ``socket_dir`` is where sessions make their private
    directories (default: the system temp dir; a unix socket path must stay
    under 108 bytes). ``request_timeout`` (seconds, None: none) bounds one
    forward call (504). ``count_tokens(path, body)``, when given, is the LLM's
    own prompt token count, asked only when the byte bound of a budgeted
    request does not fit in what remains (see the budget semantics).

    Limits on what one session's agent can hold (see the module docstring):

    - ``max_body_bytes`` (1 MiB): a request body; larger is answered 413;
    - ``max_connections_per_session`` (32): open connections; more are answered
      503 and closed at once;
    - ``max_concurrent_requests`` (8): requests being read or answered at once;
      later ones wait, their connections unread;
    - ``max_header_line_bytes`` (8190) and ``max_headers`` (32): the request line
      and each header line, and the number of headers (431 or 400 above);
    - ``keepalive_timeout`` (30 s): a connection is closed when it has not sent a
      complete request head this long after opening or after its last answer;
    - ``read_timeout`` (30 s): a request's body must arrive within this after its
      head (408 and closed otherwise), and the agent must take in the answer
      within this (closed otherwise).

    And across sessions, ``max_connections`` open connections (default: a
    quarter of the process's ``RLIMIT_NOFILE``, at most 512).

    Sessions work without starting the gateway; ``async with gateway`` (or
    ``aclose()``) closes the sessions still open when it ends.
    """

    def __init__(self, forward: Forward, models: Sequence[str], *,
                 count_tokens: TokenCounter | None = None,
                 on_usage: UsageCallback | None = None, max_body_bytes: int = 1 << 20,
                 socket_dir: str | None = None, request_timeout: float | None = None,
                 max_connections_per_session: int = 32, max_concurrent_requests: int = 8,
                 max_connections: int | None = None, max_header_line_bytes: int = 8190,
                 max_headers: int = 32, keepalive_timeout: float = 30.0,
                 read_timeout: float = 30.0) -> None:
        if not models:
            raise ValueError("an LLM gateway needs at least one model name")
        if max_connections is None:
            max_connections = default_max_connections()
        for name, value in (("max_body_bytes", max_body_bytes),
                            ("max_connections_per_session", max_connections_per_session),
                            ("max_concurrent_requests", max_concurrent_requests),
                            ("max_connections", max_connections),
                            ("max_header_line_bytes", max_header_line_bytes),
                            ("max_headers", max_headers), ("keepalive_timeout", keepalive_timeout),
                            ("read_timeout", read_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.forward = forward
        self.count_tokens = count_tokens
        self.models: tuple[str, ...] = tuple(models)
        self.on_usage = on_usage
        self.max_body_bytes = max_body_bytes
        self.socket_dir = socket_dir
        self.request_timeout = request_timeout
        self.max_concurrent_requests = max_concurrent_requests
        self.read_timeout = read_timeout
        self._limits = ServerLimits(max_connections_per_session, max_header_line_bytes,
                                    max_headers, keepalive_timeout)
        self._gate = ConnectionGate(max_connections)
        self._sessions: set[GatewaySession] = set()

    def __repr__(self) -> str:
        return (f"LLMGateway(models={list(self.models)!r}, open_sessions={len(self._sessions)}, "
                f"open_connections={self._gate.open})")

    @property
    def limits(self) -> dict[str, float]:
        """The limits in force, by keyword argument name."""
        limits = self._limits
        return {"max_body_bytes": self.max_body_bytes,
                "max_connections_per_session": limits.max_connections_per_session,
                "max_concurrent_requests": self.max_concurrent_requests,
                "max_connections": self._gate.limit,
                "max_header_line_bytes": limits.max_header_line_bytes,
                "max_headers": limits.max_headers,
                "keepalive_timeout": limits.keepalive_timeout,
                "read_timeout": self.read_timeout}

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


def guest_client_files() -> dict[str, bytes]:
    """The guest helper as ``Job.files`` entries: ``{"cladeforge_llm.py": source}``.

    Put at the work dir's root, agent code run from there can ``import cladeforge_llm``.
    """
    source = importlib.resources.files(__package__).joinpath("guest", _GUEST_MODULE)
    return {_GUEST_MODULE: source.read_bytes()}
