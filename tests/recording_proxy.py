"""A loopback HTTP proxy in front of a real OpenAI-compatible server that records
every request the server completed, so a test can tell which requests were paid.

Each response is sent in one write with TCP_NODELAY set.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit


class RecordingProxy:
    """Forwards ``/v1/...`` requests to ``upstream`` and records completed bodies."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.completed: list[Any] = []  # parsed JSON bodies the upstream answered with 200
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    def take(self) -> list[Any]:
        """The bodies completed since the last call."""
        with self._lock:
            done, self.completed = self.completed, []
        return done

    def __enter__(self) -> RecordingProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._server is not None
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                raw = await reader.readexactly(length)
                status, body = await asyncio.to_thread(self._forward, method, path, raw)
                if status == 200 and raw:
                    with self._lock:
                        self.completed.append(json.loads(raw))
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n".encode()
                    + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _forward(self, method: str, path: str, raw: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=300)
        try:
            conn.request(method, path, body=raw or None,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()
