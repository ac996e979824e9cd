"""The LLM gateway at the HTTP level (raw requests on its socket, in this process): framing,
malformed requests, limits, the budget bound under concurrent requests, closing with a
request in flight."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest

from sandboxes import GatewayUsage, LLMGateway
from sandboxes._gateway_request import prompt_token_bound
from tests.sandboxes.gateway_helpers import (
    MODEL,
    FakeLLM,
    UsageLog,
    gateway_for,
    post,
    raw_exchange,
)

CHAT = "/v1/chat/completions"


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **fields}


def test_http_framing_keep_alive_and_error_format() -> None:
    fake = FakeLLM()
    good = {"prompt": "x", "max_tokens": 1}

    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        async with gateway_for(fake).session("cand") as session:
            path = session.socket_path
            bad_json = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}"
            return [
                await raw_exchange(path, bad_json),
                await raw_exchange(path, post("/v1/completions", good, "Connection: close\r\n")),
                await raw_exchange(path, post("/v1/completions", good).replace(
                    b"HTTP/1.1", b"HTTP/1.0", 1)),
                await raw_exchange(path, post("/v1/completions?x=1", good,
                                              "Expect: 100-continue\r\n")),
                await raw_exchange(path, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"),
                await raw_exchange(path, b"HELLO\r\n\r\n"),
                await raw_exchange(path, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: -5\r\n\r\n"),
            ]

    answers = asyncio.run(scenario())
    (s1, h1, b1), (s2, h2, _), (s3, h3, _), (s4, h4, b4), (s5, h5, b5) = answers[:5]
    # HTTP/1.1 keeps the connection by default: no Connection header, or "keep-alive"
    assert (s1, h1.get("connection", "keep-alive"), b1["error"]["code"]) == (
        400, "keep-alive", "invalid_json")
    assert b1["error"]["type"] == "invalid_request_error" and b1["error"]["message"]
    assert (s2, h2["connection"]) == (200, "close")
    assert (s3, h3.get("connection", "close")) == (200, "close")
    assert (s4, h4.get("connection", "keep-alive"), b4["choices"][0]["text"]) == (
        200, "keep-alive", "echo: x")
    assert (s5, b5["data"][0]["id"], h5["content-type"]) == (200, MODEL, "application/json")
    for status, headers, body in answers[5:]:
        assert (status, headers["connection"]) == (400, "close")
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert len(fake.calls) == 3


def _head(extra: str, path: str = CHAT, method: str = "POST") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


#: (name, raw request, expected status): each gets a JSON 4xx answer, at most one log line.
MALFORMED = [
    ("non-ascii digit in Content-Length", _head("Content-Length: 1\u0663\r\n") + b"{}", 400),
    ("negative Content-Length", _head("Content-Length: -5\r\n"), 400),
    ("overflowing Content-Length", _head("Content-Length: " + "9" * 30 + "\r\n"), 400),
    ("huge Content-Length", _head("Content-Length: 10000000000\r\n"), 413),
    ("two Content-Lengths", _head("Content-Length: 2\r\nContent-Length: 3\r\n") + b"{}", 400),
    ("chunked garbage", _head("Transfer-Encoding: chunked\r\n") + b"zz\r\nqq\r\n\r\n", 400),
    ("chunked body", _head("Transfer-Encoding: chunked\r\n") + b"2\r\n{}\r\n0\r\n\r\n", 400),
    ("chunked and Content-Length",
     _head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n", 400),
    ("deeply nested JSON", _head("Content-Length: 300000\r\n") + b"[" * 300_000, 400),
    ("deeply nested JSON, closed", _head("Content-Length: 20000\r\n")
     + b"[" * 10_000 + b"]" * 10_000, 400),
    ("invalid UTF-8 body", _head("Content-Length: 16\r\n") + b'{"messages":"\xff"}', 400),
    ("invalid UTF-8 path", b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("NUL in path", b"GET /v1/mo\x00dels HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("not HTTP", b"HELLO\r\n\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("header without colon", _head("bad header\r\n"), 400),
    ("header line too long", _head("X-A: " + "a" * 20_000 + "\r\n"), 431),
    ("request line too long", _head("", path="/" + "a" * 20_000, method="GET"), 431),
    ("too many headers", _head("".join(f"X-{i}: a\r\n" for i in range(100))), 400),
    ("no Host", b"GET /v1/models HTTP/1.1\r\n\r\n", 400),
    ("compressed body", _head("Content-Encoding: gzip\r\nContent-Length: 2\r\n") + b"{}", 415),
    ("empty body", _head("Content-Length: 0\r\n"), 400),
    ("body of the wrong shape", _head("Content-Length: 2\r\n") + b"[]", 400),
    ("unknown endpoint", _head("", path="/v1/%ff%00", method="GET"), 404),
    ("wrong method", _head("", path="/v1/models", method="DELETE"), 405),
    ("short body", _head("Content-Length: 50\r\n") + b"{}", 408),
]


@pytest.mark.parametrize(("raw", "status"), [(raw, status) for _, raw, status in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_each_malformed_request_gets_a_json_4xx_and_at_most_one_log_line(
        raw: bytes, status: int, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeLLM()
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[int, dict[str, str], Any]:
        gateway = gateway_for(fake, max_body_bytes=400_000, read_timeout=0.5)
        async with gateway.session("cand") as session:
            caplog.clear()
            answer = await asyncio.wait_for(raw_exchange(session.socket_path, raw), 10)
            records = [r for r in caplog.records if "session 'cand'" in r.getMessage()
                       or not r.name.startswith("sandboxes._gateway")]
            assert len(records) <= 1, [r.getMessage() for r in caplog.records]
            return answer

    got, headers, body = asyncio.run(scenario())
    assert got == status
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]
    assert not fake.calls


@pytest.mark.parametrize(("budget", "prompt", "max_tokens"),
                         [(100, 10, 40), (45, 50, 10), (0, 1, 1), (1000, 3, 7), (80, 1, 200)])
def test_budget_bound_holds_under_concurrent_requests(budget: int, prompt: int,
                                                      max_tokens: int) -> None:
    fake = FakeLLM(prompt_tokens=prompt)
    body = chat("x", max_tokens=max_tokens)
    bound = prompt_token_bound(body)
    request = post(CHAT, body)

    async def scenario() -> tuple[list[int], GatewayUsage]:
        async with gateway_for(fake).session("cand", token_budget=budget) as session:
            answers = await asyncio.gather(*(raw_exchange(session.socket_path, request)
                                             for _ in range(20)))
            return [status for status, _, _ in answers], session.usage

    statuses, usage = asyncio.run(scenario())
    assert set(statuses) <= {200, 400, 429}
    assert statuses.count(200) == usage.requests
    assert statuses.count(429) + statuses.count(400) == usage.refused
    # the documented bound: the budget plus one request's prompt tokens beyond the estimate
    assert usage.total_tokens <= budget + max(0, prompt - bound)
    assert all(sent["max_tokens"] <= max_tokens for _, sent in fake.calls)
    assert all(bound + sent["max_tokens"] <= budget for _, sent in fake.calls)


def test_a_prompt_larger_than_the_budget_is_refused_without_forwarding() -> None:
    fake = FakeLLM(prompt_tokens=None)
    huge = post(CHAT, chat("y" * ((1 << 20) - 200)))
    assert len(huge) < (1 << 20) + 200

    async def scenario() -> tuple[list[tuple[int, Any]], GatewayUsage]:
        gateway = gateway_for(fake, max_body_bytes=(1 << 20) + 200)
        async with gateway.session("cand", token_budget=20_000) as session:
            answers = []
            for request in (huge, post(CHAT, chat("z" * 19_990)), post(CHAT, chat("ok"))):
                status, _, body = await raw_exchange(session.socket_path, request)
                answers.append((status, body))
            return answers, session.usage

    answers, usage = asyncio.run(scenario())
    (s1, b1), (s2, b2), (s3, b3) = answers
    assert (s1, b1["error"]["code"]) == (400, "prompt_exceeds_token_budget")
    assert (s2, b2["error"]["code"]) == (400, "prompt_exceeds_token_budget")
    assert s3 == 200 and b3["choices"][0]["message"]["content"] == "echo: ok"
    assert len(fake.calls) == 1
    # "ok": 2 bytes + 40 of overhead; the rest of the budget became its max_tokens
    assert fake.calls[0][1]["max_tokens"] == 20_000 - 42
    assert usage == GatewayUsage(requests=1, prompt_tokens=2, completion_tokens=19_958,
                                 refused=2)


def test_usage_never_exceeds_the_budget_with_an_honest_server() -> None:
    fake = FakeLLM(prompt_tokens=None)  # prompt tokens = bytes: within the estimate
    sizes = [5, 900, 3000, 40, 7000, 1, 2500, 600, 10, 9000, 300, 2]

    async def scenario() -> tuple[list[int], GatewayUsage]:
        async with gateway_for(fake).session("cand", token_budget=20_000) as session:
            statuses, used = [], []
            for i, size in enumerate(sizes):
                request = post(CHAT, chat("w" * size, max_tokens=1500 + 100 * i))
                statuses.append((await raw_exchange(session.socket_path, request))[0])
                used.append(session.usage.total_tokens)
                assert used[-1] <= 20_000
            return statuses, session.usage

    statuses, usage = asyncio.run(scenario())
    assert 200 in statuses and 429 in statuses
    assert usage.total_tokens <= 20_000 and usage.refused == statuses.count(429)


def test_connection_limits_answer_503_and_release_the_descriptor() -> None:
    fake = FakeLLM()

    async def read_all(path: str) -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            return await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()

    async def scenario() -> tuple[bytes, bytes, int, int]:
        gateway = gateway_for(fake, max_connections_per_session=3, max_connections=5)
        async with gateway.session("a") as a, gateway.session("b") as b:
            held = [socket.socket(socket.AF_UNIX) for _ in range(3)]
            for sock in held:
                sock.connect(a.socket_path)
            await asyncio.sleep(0.1)
            over_session = await read_all(a.socket_path)  # a's fourth
            held += [socket.socket(socket.AF_UNIX) for _ in range(2)]
            for sock in held[3:]:
                sock.connect(b.socket_path)
            await asyncio.sleep(0.1)
            over_gateway = await read_all(b.socket_path)  # the gateway's sixth
            for sock in held:
                sock.close()
            await asyncio.sleep(0.1)
            status, _, _ = await raw_exchange(b.socket_path, b"GET /v1/models HTTP/1.1\r\n"
                                                             b"Host: x\r\n\r\n")
            return over_session, over_gateway, status, a.connections

    over_session, over_gateway, status, accepted = asyncio.run(scenario())
    for answer in (over_session, over_gateway):
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and b"Connection: close" in head
        assert json.loads(body)["error"]["code"] == "too_many_connections"
    assert b"this candidate" in over_session and b"all candidates" in over_gateway
    assert status == 200 and accepted == 3


def test_slow_heads_and_bodies_are_cut_off() -> None:
    fake = FakeLLM()

    async def scenario() -> tuple[bytes, float, bytes, float]:
        gateway = gateway_for(fake, keepalive_timeout=0.5, read_timeout=0.5)
        async with gateway.session("cand") as session:
            loop = asyncio.get_running_loop()
            outcomes = []
            for first in (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: a",
                          _head("Content-Length: 1000\r\n") + b'{"messages": '):
                reader, writer = await asyncio.open_unix_connection(session.socket_path)
                start = loop.time()
                writer.write(first)
                answer = b""
                while not reader.at_eof() and loop.time() - start < 10:
                    writer.write(b"a")  # one byte now and then
                    try:
                        answer += await asyncio.wait_for(reader.read(4096), 0.1)
                    except TimeoutError:
                        pass
                    except ConnectionError:
                        break
                outcomes += [answer, loop.time() - start]
                writer.close()
            return tuple(outcomes)  # type: ignore[return-value]

    head_answer, head_time, body_answer, body_time = asyncio.run(scenario())
    assert head_answer == b"" and head_time < 3  # closed without an answer
    assert body_answer.startswith(b"HTTP/1.1 408") and body_time < 3
    assert not fake.calls


def test_closing_a_session_cancels_a_request_in_flight() -> None:
    fake, log = FakeLLM(), UsageLog()
    request = post("/v1/completions", {"prompt": "never answered"})

    async def scenario() -> BaseException | tuple[Any, ...]:
        fake.gate = asyncio.Event()
        gateway = gateway_for(fake, log)
        async with gateway:
            session = gateway.session("cand", token_budget=100)
            await session.start()
            pending = asyncio.create_task(raw_exchange(session.socket_path, request))
            while not fake.calls:
                await asyncio.sleep(0.01)
        # leaving the gateway closed the session: the agent's connection ends unanswered
        return (await asyncio.gather(pending, return_exceptions=True))[0]

    result = asyncio.run(scenario())
    assert isinstance(result, asyncio.IncompleteReadError | ConnectionError)
    assert log.calls == [("cand", GatewayUsage())]


def test_session_and_gateway_arguments_are_checked() -> None:
    gateway = gateway_for(FakeLLM())
    with pytest.raises(ValueError, match="token_budget"):
        gateway.session("k", token_budget=-1)
    with pytest.raises(ValueError, match="max_tokens_cap"):
        gateway.session("k", max_tokens_cap=0)
    with pytest.raises(ValueError, match="model"):
        LLMGateway(FakeLLM(), [])
    for name in ("max_connections", "read_timeout", "max_concurrent_requests"):
        with pytest.raises(ValueError, match=name):
            LLMGateway(FakeLLM(), [MODEL], **{name: 0})
    with pytest.raises(RuntimeError, match="not started"):
        _ = gateway.session("k").socket_path
    assert 16 <= gateway.limits["max_connections"] <= 512


def test_the_llms_own_count_admits_a_prompt_whose_byte_bound_does_not_fit() -> None:
    # 4,000-byte prompts: "b..." counted as 4,000 tokens cannot fit a 3,000-token budget;
    # "a..." counted as 1,000 fits, and the rest of the budget becomes its max_tokens
    fake = FakeLLM(prompt_tokens=1000)
    asked: list[str] = []

    async def count_tokens(path: str, body: dict[str, Any]) -> int | None:
        text = body["messages"][0]["content"]
        asked.append(text[:1])
        return len(text) // 4 if text.startswith("a") else len(text)

    async def scenario() -> tuple[list[tuple[int, Any]], GatewayUsage]:
        gateway = gateway_for(fake)
        gateway.count_tokens = count_tokens
        async with gateway.session("cand", token_budget=3000) as session:
            answers = []
            for request in (chat("b" * 4000), chat("c" * 10, max_tokens=10), chat("a" * 4000)):
                status, _, body = await raw_exchange(session.socket_path, post(CHAT, request))
                answers.append((status, body))
            return answers, session.usage

    answers, usage = asyncio.run(scenario())
    assert [status for status, _ in answers] == [400, 200, 200]
    assert answers[0][1]["error"]["code"] == "prompt_exceeds_token_budget"
    assert "takes 4000 tokens" in answers[0][1]["error"]["message"]
    assert asked == ["b", "a"]  # "c": its byte bound fits, nothing to ask
    assert fake.calls[1][1]["max_tokens"] == 3000 - (1000 + 10) - 1000
    assert usage.total_tokens == 3000


@pytest.mark.parametrize("failure", ["none", "raises", "hangs"])
def test_without_a_count_the_byte_bound_stands(failure: str) -> None:
    fake = FakeLLM(prompt_tokens=10)

    async def count_tokens(path: str, body: dict[str, Any]) -> int | None:
        if failure == "raises":
            raise ConnectionError("tokenizer down")
        if failure == "hangs":
            await asyncio.sleep(60)
        return None

    async def scenario() -> tuple[int, Any]:
        gateway = gateway_for(fake, request_timeout=0.5)
        gateway.count_tokens = count_tokens
        async with gateway.session("cand", token_budget=3000) as session:
            status, _, body = await raw_exchange(session.socket_path,
                                                 post(CHAT, chat("a" * 4000)))
            return status, body

    status, body = asyncio.run(scenario())
    assert (status, body["error"]["code"]) == (400, "prompt_exceeds_token_budget")
    assert not fake.calls
