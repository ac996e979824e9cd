"""A scriptable stub of an OpenAI-compatible chat server, for tests and benchmarks.

The stub runs an asyncio server on 127.0.0.1 (port 0) in a background thread, so
tests can drive it from ``asyncio.run`` in the main thread. Each request takes
the next scripted :class:`Reply` (or the default, which echoes the last user
message) and is recorded with its headers. Every response is sent in one write
on a socket with ``TCP_NODELAY`` set, so Nagle's algorithm never adds delay.

    with StubOpenAI() as stub:
        stub.script(Reply.error(500), Reply.ok("fine"))
        client = LLMClient(stub.base_url, "stub-model")
        ...
        assert len(stub.requests) == 2

GET requests (health checks) take a reply too. Run ``python -m tests.stub_openai``
to serve default replies in a separate process (it prints the base URL), e.g.
for benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reply:
    """What the stub does with one request.

    kind: ``ok`` (a completion), ``status`` (an HTTP error with a JSON error
    body), ``raw`` (a 200 with ``body`` verbatim), ``drop`` (close the
    connection without answering), ``chunked`` (a completion sent with chunked
    transfer encoding), ``eof`` (a completion without length, ended by closing
    the connection). ``delay`` seconds pass before anything is sent.
    """

    kind: str = "ok"
    text: str | None = None  # None: echo the last user message
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    prompt_tokens: int = 7
    completion_tokens: int = 3
    close: bool = False  # send "Connection: close" and close after the response
    headers: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def ok(text: str | None = None, **kw: Any) -> Reply:
        return Reply("ok", text=text, **kw)

    @staticmethod
    def error(status: int, message: str = "stub error", **kw: Any) -> Reply:
        body = json.dumps({"error": {"message": message, "code": status}}).encode()
        return Reply("status", status=status, body=body, **kw)

    @staticmethod
    def garbage(body: bytes = b"<html>not json</html>", **kw: Any) -> Reply:
        return Reply("raw", body=body, **kw)

    @staticmethod
    def no_choices(**kw: Any) -> Reply:
        return Reply("raw", body=b'{"object": "chat.completion", "choices": []}', **kw)

    @staticmethod
    def empty(**kw: Any) -> Reply:
        return Reply("ok", text="", **kw)

    @staticmethod
    def drop(**kw: Any) -> Reply:
        return Reply("drop", **kw)

    @staticmethod
    def slow(delay: float, text: str | None = None) -> Reply:
        return Reply("ok", text=text, delay=delay)

    @staticmethod
    def chunked(text: str | None = None, **kw: Any) -> Reply:
        return Reply("chunked", text=text, **kw)

    @staticmethod
    def until_close(text: str | None = None, **kw: Any) -> Reply:
        return Reply("eof", text=text, close=True, **kw)


@dataclass(frozen=True)
class Received:
    """One request the stub received."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw bytes when not JSON


def _completion_body(request: Any, reply: Reply) -> bytes:
    text = reply.text
    if text is None:
        text = ""
        if isinstance(request, dict):
            users = [m for m in request.get("messages", []) if m.get("role") == "user"]
            text = f"echo: {users[-1]['content']}" if users else "echo"
    return json.dumps({
        "id": "chatcmpl-stub", "object": "chat.completion", "model": "stub",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": reply.prompt_tokens,
                  "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
    }).encode()


def _head(status: int, extra: Mapping[str, str], close: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Server: stub-openai",
             "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    lines.append("Connection: close" if close else "Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n").encode()


class StubOpenAI:
    """The stub server; a context manager (``start``/``stop`` also work)."""

    def __init__(self, default: Reply | None = None, *, port: int = 0) -> None:
        self.default = default or Reply.ok()
        self.requests: list[Received] = []
        self.connections = 0  # TCP connections accepted
        self.active = 0  # requests being answered right now
        self.max_active = 0  # the most requests answered at once
        self._port = port
        self._queue: deque[Reply] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control, from the test's thread --------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        self._queue.extend(replies)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def start(self) -> StubOpenAI:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self._port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="stub-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> StubOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving, in the stub's thread ----------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        self._writers.add(writer)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Received(method, path, headers, body))
        reply = self._queue.popleft() if self._queue else self.default
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(writer, method, body, reply)
        finally:
            self.active -= 1

    async def _answer(self, writer: asyncio.StreamWriter, method: str, body: Any,
                      reply: Reply) -> bool:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.kind == "drop":
            return False
        if method == "GET" and reply.kind == "ok":
            payload = b'{"status": "ok", "object": "list", "data": [{"id": "stub"}]}'
        elif reply.kind in ("ok", "chunked", "eof"):
            payload = _completion_body(body, reply)
        else:
            payload = reply.body
        status = reply.status if reply.kind == "status" else 200
        if reply.kind == "chunked":
            half = len(payload) // 2
            parts = [payload[:half], payload[half:]]
            data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
            extra = {"Transfer-Encoding": "chunked", **reply.headers}
        elif reply.kind == "eof":
            data, extra = payload, dict(reply.headers)
        else:
            data = payload
            extra = {"Content-Length": str(len(payload)), **reply.headers}
        writer.write(_head(status, extra, reply.close) + b"\r\n" + data)  # one write
        await writer.drain()
        return not reply.close


def main() -> None:  # pragma: no cover - manual/benchmark use
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    stub = StubOpenAI(port=port).start()
    print(stub.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
