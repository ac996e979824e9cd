"""The server side of HTTP/1.1 as the LLM gateway needs it, on asyncio streams.

One request at a time per connection (keep-alive, no pipelining guarantees
beyond reading requests in order), request bodies framed by ``Content-Length``
only, JSON responses framed by ``Content-Length``. Anything else a client sends
is answered with a clear error in OpenAI's format and, where the framing is
lost, the connection is closed.
"""

from __future__ import annotations

import asyncio
import http
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HEAD_LIMIT", "GatewayHTTPError", "Request", "error_body", "read_request",
           "write_response"]

#: The most bytes a request line plus headers may take (also the stream buffer limit).
HEAD_LIMIT = 64 * 1024
#: An oversized body up to this many times the cap is read and discarded before the 413,
#: so that a client still sending it sees the answer instead of a broken pipe.
_DRAIN_FACTOR = 16
_DRAIN_CHUNK = 64 * 1024


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """An error payload in OpenAI's format."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class GatewayHTTPError(Exception):
    """A request the gateway answers with an error status.

    ``close`` asks for the connection to be closed after the answer (the
    request's framing cannot be trusted, or the body was not read).
    """

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.close = close

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. ``path`` has no query string; header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       max_body: int) -> Request | None:
    """Read the next request; None when the client closed the connection between requests.

    Raises :class:`GatewayHTTPError` (with ``close`` set) for a request that
    cannot be read: bad request line or header, chunked or unframed body, a
    body over ``max_body`` bytes (413), headers over ``HEAD_LIMIT`` (431).
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # closed between requests, or in the middle of a head: nobody to answer
    except asyncio.LimitOverrunError as exc:
        raise GatewayHTTPError(431, f"request headers larger than {HEAD_LIMIT} bytes",
                               code="headers_too_large", close=True) from exc
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise GatewayHTTPError(400, f"not an HTTP/1.1 request line: {lines[0][:80]!r}",
                               code="bad_request_line", close=True)
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise GatewayHTTPError(400, f"bad header line: {line[:80]!r}",
                                   code="bad_header", close=True)
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.1":
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection
    if "transfer-encoding" in headers:
        raise GatewayHTTPError(
            400, "chunked (or otherwise transfer-encoded) request bodies are not supported; "
            "send the whole JSON body with a Content-Length header",
            code="transfer_encoding_not_supported", close=True)
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise GatewayHTTPError(400, f"bad Content-Length: {length_text[:40]!r}",
                               code="bad_content_length", close=True)
    length = int(length_text)
    if length > max_body:
        if length <= _DRAIN_FACTOR * max_body:
            await _discard(reader, length)
        raise GatewayHTTPError(
            413, f"request body of {length} bytes is larger than the gateway's limit of "
            f"{max_body} bytes; send a shorter prompt", code="body_too_large", close=True)
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None  # the client went away in the middle of its body
    return Request(method.upper(), target.split("?", 1)[0], headers, body, keep_alive)


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    left = length
    while left > 0:
        chunk = await reader.read(min(left, _DRAIN_CHUNK))
        if not chunk:
            return
        left -= len(chunk)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status"


async def write_response(writer: asyncio.StreamWriter, status: int, payload: Any,
                         keep_alive: bool) -> None:
    """Send one JSON response in one write and wait until it is flushed."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    head = (f"HTTP/1.1 {status} {_reason(status)}\r\n"
            "Server: cladeforge-llm-gateway\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    writer.write(head.encode("latin-1") + body)
    await writer.drain()
