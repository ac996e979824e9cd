"""The HTTP/1.1 keep-alive client against a raw TCP server that sends scripted bytes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from evolve.llm._http import HTTPPool, HTTPProtocolError, HTTPResponse
from evolve.llm._server_base import free_port

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(5):  # a hang is a failure, not a stuck suite
            return await coro
    return asyncio.run(bounded())


class Peer:
    """The server's end of one connection."""

    def __init__(self, index: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.requests: list[tuple[str, bytes]] = []  # (head, body)
        self.saw_eof = False

    async def request(self) -> tuple[str, bytes] | None:
        """The next request (head text and body), or None when the client closed."""
        try:
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            self.saw_eof = True
            return None
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        request = (head, await self.reader.readexactly(length))
        self.requests.append(request)
        return request

    async def send(self, *parts: bytes) -> None:
        """Write each part as its own segment and let the client read it."""
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            for _ in range(3):
                await asyncio.sleep(0)

    async def wait_eof(self) -> None:
        if await self.reader.read(1) == b"":
            self.saw_eof = True


class Server:
    """A raw TCP server on 127.0.0.1; ``handler`` scripts each connection."""

    def __init__(self, handler: Callable[[Peer], Awaitable[None]]) -> None:
        self.handler = handler
        self.peers: list[Peer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    @property
    def requests(self) -> list[tuple[str, bytes]]:
        return [r for p in self.peers for r in p.requests]

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        try:
            await self.handler(peer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


def answering(*responses: bytes | list[bytes], close: bool = False
              ) -> Callable[[Peer], Awaitable[None]]:
    """A handler answering each request, on whichever connection, with the next response
    (a list: sent as separate segments); 200 OK once they run out. ``close``: close the
    connection after each response."""
    queue = list(responses)

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            response = queue.pop(0) if queue else OK
            await peer.send(*(response if isinstance(response, list) else [response]))
            if close:
                return
    return handler


async def get(pool: HTTPPool, method: str = "POST", body: bytes | None = b"{}") -> HTTPResponse:
    return await pool.request(method, "/chat/completions", body)


# -- requests and responses ------------------------------------------------------------------
def test_request_is_one_message_with_the_pool_headers() -> None:
    async def main() -> None:
        async with Server(answering()) as server:
            pool = HTTPPool(server.url, extra_headers={"Authorization": "Bearer k"})
            assert pool.base_path == "/v1"
            response = await pool.request("POST", "/chat/completions", b'{"x": 1}')
            assert response == HTTPResponse(200, {"content-type": "application/json",
                                                  "content-length": "7"}, b'{"a":1}')
            await pool.request("GET", "/models")
            await pool.aclose()
            (head, body), (get_head, get_body) = server.requests
            lines = head.split("\r\n")
            assert lines[0] == "POST /v1/chat/completions HTTP/1.1"
            port = server.url.split(":")[2].split("/")[0]
            for line in (f"Host: 127.0.0.1:{port}", "Authorization: Bearer k",
                         "Content-Type: application/json", "Content-Length: 8"):
                assert line in lines
            assert body == b'{"x": 1}'
            assert get_head.startswith("GET /v1/models HTTP/1.1\r\n")
            assert "content-length" not in get_head.lower() and get_body == b""
            assert len(server.peers) == 1  # kept alive
    run(main())


BODY = b'{"choices": [{"message": {"content": "hello"}}]}'
BY_LENGTH = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Extra:  padded value \r\n\r\n%s"
             % (len(BODY), BODY))
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\n" + BODY[:5] + b"\r\n" + b"%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n"
           b"0\r\nX-Trailer: t\r\n\r\n")
UNTIL_EOF = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY


@pytest.mark.parametrize("response", [BY_LENGTH, CHUNKED, UNTIL_EOF],
                         ids=["content-length", "chunked", "until-eof"])
def test_a_response_arriving_one_byte_at_a_time(response: bytes) -> None:
    async def main() -> None:
        async with Server(answering([response[i:i + 1] for i in range(len(response))],
                                    close=response is UNTIL_EOF)) as server:
            pool = HTTPPool(server.url)
            first = await get(pool)
            assert first.status == 200 and first.body == BODY
            assert (await get(pool)).body == b'{"a":1}'
            await pool.aclose()
            assert len(server.peers) == (2 if response is UNTIL_EOF else 1)
    run(main())


@pytest.mark.parametrize("cut", [5, 30, 38, 40, 41, 42, 50, len(BY_LENGTH) - 1])
def test_head_and_body_split_across_writes(cut: int) -> None:
    async def main() -> None:
        async with Server(answering([BY_LENGTH[:cut], BY_LENGTH[cut:]],
                                    [CHUNKED[:cut], CHUNKED[cut:]])) as server:
            pool = HTTPPool(server.url)
            response = await get(pool)
            assert response.body == BODY and response.headers["x-extra"] == "padded value"
            assert (await get(pool)).body == BODY
            assert (await get(pool)).body == b'{"a":1}'
            await pool.aclose()
            assert len(server.peers) == 1
    run(main())


def test_chunked_with_extensions_and_trailers_keeps_the_connection() -> None:
    response = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
                b"4;name=value\r\nWiki\r\n5 ; a=b\r\npedia\r\n"
                b"E\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-T: 1\r\n\r\n")
    async def main() -> None:
        async with Server(answering(response)) as server:
            pool = HTTPPool(server.url)
            assert (await get(pool)).body == b"Wikipedia in\r\n\r\nchunks."
            assert (await get(pool)).body == b'{"a":1}'  # the trailers were all consumed
            await pool.aclose()
            assert len(server.peers) == 1
    run(main())


def test_a_close_delimited_body_is_read_to_eof_and_the_connection_not_reused() -> None:
    async def main() -> None:
        async with Server(answering([UNTIL_EOF[:60], UNTIL_EOF[60:]], close=True)) as server:
            pool = HTTPPool(server.url)
            assert (await get(pool)).body == BODY
            assert (await get(pool)).body == b'{"a":1}'
            await pool.aclose()
            assert len(server.peers) == 2
    run(main())


@pytest.mark.parametrize(("method", "head"), [
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("POST", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
])
def test_no_body_for_head_204_and_304(method: str, head: bytes) -> None:
    async def main() -> None:
        async with Server(answering(head)) as server:
            pool = HTTPPool(server.url)
            response = await get(pool, method, None)
            assert response.body == b"" and response.status == int(head[9:12])
            assert (await get(pool)).body == b'{"a":1}'  # the same connection, in step
            await pool.aclose()
            assert len(server.peers) == 1
    run(main())


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
])
def test_connection_close_and_http_1_0_are_not_kept_alive(head: bytes) -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            if peer.index == 0:
                await peer.request()
                await peer.send(head + b"hi")
                await peer.wait_eof()  # the client closes it (the server does not)
            else:
                await answering()(peer)

        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            assert (await get(pool)).body == b"hi"
            assert (await get(pool)).body == b'{"a":1}'
            await pool.aclose()
            assert len(server.peers) == 2 and server.peers[0].saw_eof
    run(main())


def test_large_bodies_in_many_pieces() -> None:
    big = bytes(range(256)) * 8192  # 2 MiB
    pieces = [big[i:i + 65536] for i in range(0, len(big), 65536)]
    by_length = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big), *pieces]
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
               *(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces), b"0\r\n\r\n"]
    many_chunks = b"".join(b"1\r\n%c\r\n" % c for c in b"x" * 5000) + b"0\r\n\r\n"
    tiny = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + many_chunks

    async def main() -> None:
        async with Server(answering(by_length, chunked, tiny)) as server:
            pool = HTTPPool(server.url)
            assert (await get(pool)).body == big
            assert (await get(pool)).body == big
            assert (await get(pool)).body == b"x" * 5000
            await pool.aclose()
    run(main())


# -- broken responses ------------------------------------------------------------------------
@pytest.mark.parametrize(("response", "message"), [
    (b"HTTP/2 200 OK\r\n\r\n", "bad HTTP status line"),
    (b"<html>hello</html>\r\n\r\n", "bad HTTP status line"),
    (b"HTTP/1.1 OK 200\r\n\r\n", "bad HTTP status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad HTTP header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "bad response framing"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n", "bad response framing"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad response framing"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n",
     "bad response framing"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
     "chunk not followed by CRLF"),
])
def test_malformed_responses_are_protocol_errors(response: bytes, message: str) -> None:
    async def main() -> None:
        async with Server(answering([response[:20], response[20:]])) as server:
            pool = HTTPPool(server.url)
            with pytest.raises(HTTPProtocolError, match=message):
                await get(pool)
            assert (await get(pool)).body == b'{"a":1}'  # on a new connection
            await pool.aclose()
            assert len(server.peers) == 2 and server.peers[0].saw_eof  # closed by the client
    run(main())


def test_response_headers_over_one_mib_are_refused() -> None:
    filler = b"X-Filler: " + b"y" * 1000 + b"\r\n"
    head = b"HTTP/1.1 200 OK\r\n" + filler * 1100

    async def main() -> None:
        async with Server(answering(head)) as server:
            pool = HTTPPool(server.url)
            with pytest.raises(HTTPProtocolError, match="response headers too large"):
                await get(pool)
            await pool.aclose()
    run(main())


@pytest.mark.parametrize(("partial", "message"), [
    (b"HTTP/1.1 200 OK\r\nContent-Len", "connection closed in the response headers"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
     "connection closed in the middle of the response body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
     "connection closed in the middle of the response body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n",
     "connection closed in the middle of the response body"),
])
def test_a_connection_closed_mid_response_is_a_protocol_error(partial: bytes,
                                                              message: str) -> None:
    async def main() -> None:
        async with Server(answering(partial, close=True)) as server:
            pool = HTTPPool(server.url)
            with pytest.raises(HTTPProtocolError, match=message):
                await get(pool)
            await pool.aclose()
            assert len(server.requests) == 1  # not resent: the server had begun to answer
    run(main())


# -- connections -----------------------------------------------------------------------------
def test_a_stale_idle_connection_is_retried_once_on_a_fresh_one() -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        if peer.index == 0:
            await peer.request()  # the next request on the reused connection: dropped
            return
        await answering()(peer)

    async def main() -> None:
        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            await get(pool)
            assert (await get(pool)).body == b'{"a":1}'  # transparently
            assert (await get(pool)).body == b'{"a":1}'
            await pool.aclose()
            assert len(server.peers) == 2
            assert [len(p.requests) for p in server.peers] == [2, 2]
    run(main())


def test_an_idle_connection_the_server_closed_is_not_used() -> None:
    async def main() -> None:
        async with Server(answering(close=True)) as server:
            pool = HTTPPool(server.url)
            await get(pool)  # kept alive by the client: the server just closes it
            await asyncio.sleep(0.02)
            await get(pool)
            await pool.aclose()
            assert [len(p.requests) for p in server.peers] == [1, 1]
    run(main())


def test_a_fresh_connection_closed_without_an_answer_is_not_retried() -> None:
    async def drop(peer: Peer) -> None:
        await peer.request()

    async def main() -> None:
        async with Server(drop) as server:
            pool = HTTPPool(server.url)
            with pytest.raises(HTTPProtocolError, match="closed the connection without answer"):
                await get(pool)
            await pool.aclose()
            assert len(server.requests) == 1
    run(main())


def test_a_stale_connection_is_retried_only_once() -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(OK)
        await peer.request()  # then every request is dropped

    async def main() -> None:
        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            await get(pool)
            with pytest.raises(HTTPProtocolError, match="closed the connection without answer"):
                await get(pool)
            await pool.aclose()
            assert [len(p.requests) for p in server.peers] == [2, 1]
    run(main())


def test_a_cancelled_request_closes_its_connection() -> None:
    async def handler(peer: Peer) -> None:
        if peer.index == 0:
            await peer.request()
            await peer.send(OK)
            await peer.request()
            await peer.send(OK[:20])  # then nothing: the client gives up
            await peer.wait_eof()
            return
        await answering()(peer)

    async def main() -> None:
        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            await get(pool)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await get(pool)
            assert (await get(pool)).body == b'{"a":1}'
            await asyncio.sleep(0.01)
            assert server.peers[0].saw_eof  # the client closed the cancelled one
            await pool.aclose()
            assert len(server.peers) == 2
    run(main())


def test_one_request_at_a_time_per_connection_and_most_recent_reused_first() -> None:
    delays = [0.03, 0.01, 0.02]  # the first connection answers last
    pipelined = []

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            if peer.index or len(peer.requests) == 2:
                await asyncio.sleep(delays[peer.index])
            # (a private attribute: is a next request already waiting, unanswered?)
            pipelined.append(bool(peer.reader._buffer))  # type: ignore[attr-defined]
            body = b"%d" % peer.index
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    async def main() -> None:
        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            await get(pool)  # one idle connection; then three requests at once
            answers = await asyncio.gather(*(get(pool) for _ in range(3)))
            assert sorted(a.body for a in answers) == [b"0", b"1", b"2"]
            assert (await get(pool)).body == b"0"  # the last one returned to the pool
            assert (await get(pool)).body == b"0"
            await pool.aclose()
            assert [len(p.requests) for p in server.peers] == [4, 1, 1]
            assert not any(pipelined)
    run(main())


def test_a_refused_connection_is_an_os_error() -> None:
    async def main() -> None:
        pool = HTTPPool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(ConnectionRefusedError):
            await get(pool)
    run(main())


def test_aclose_closes_idle_connections_and_the_pool() -> None:
    async def main() -> None:
        async def handler(peer: Peer) -> None:
            await peer.request()
            await peer.send(OK)
            await peer.wait_eof()

        async with Server(handler) as server:
            pool = HTTPPool(server.url)
            await asyncio.gather(get(pool), get(pool))
            await pool.aclose()
            await asyncio.sleep(0.01)
            assert len(server.peers) == 2 and all(p.saw_eof for p in server.peers)
            with pytest.raises(HTTPProtocolError, match="closed"):
                await get(pool)
    run(main())


def test_a_bad_url_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an http"):
        HTTPPool("ftp://example.com/v1").base_path  # noqa: B018
