"""The LLM gateway at the HTTP level (raw requests on its socket, in this process): framing,
errors, the budget bound under concurrent requests, closing with a request in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sandboxes import GatewayUsage, LLMGateway
from tests.sandboxes.gateway_helpers import (
    MODEL,
    FakeLLM,
    UsageLog,
    gateway_for,
    post,
    raw_exchange,
)


def test_http_framing_keep_alive_and_error_format() -> None:
    fake = FakeLLM()
    good = {"prompt": "x", "max_tokens": 1}

    async def scenario() -> list[tuple[int, dict[str, str], Any]]:
        async with gateway_for(fake).session("cand") as session:
            path = session.socket_path
            bad_json = b"POST /v1/completions HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}"
            return [
                await raw_exchange(path, bad_json),
                await raw_exchange(path, post("/v1/completions", good, "Connection: close\r\n")),
                await raw_exchange(path, post("/v1/completions", good).replace(
                    b"HTTP/1.1", b"HTTP/1.0", 1)),
                await raw_exchange(path, post("/v1/completions?x=1", good,
                                              "Expect: 100-continue\r\n")),
                await raw_exchange(path, b"GET /v1/models HTTP/1.1\r\n\r\n"),
                await raw_exchange(path, b"HELLO\r\n\r\n"),
                await raw_exchange(path, b"POST /v1/completions HTTP/1.1\r\n"
                                         b"Content-Length: -5\r\n\r\n"),
            ]

    answers = asyncio.run(scenario())
    (s1, h1, b1), (s2, h2, _), (s3, h3, _), (s4, h4, b4), (s5, h5, b5) = answers[:5]
    assert (s1, h1["connection"], b1["error"]["code"]) == (400, "keep-alive", "invalid_json")
    assert b1["error"]["type"] == "invalid_request_error" and b1["error"]["message"]
    assert (s2, h2["connection"]) == (200, "close")
    assert (s3, h3["connection"]) == (200, "close")
    assert (s4, h4["connection"], b4["choices"][0]["text"]) == (200, "keep-alive", "echo: x")
    assert (s5, b5["data"][0]["id"], h5["content-type"]) == (200, MODEL, "application/json")
    for status, headers, body in answers[5:]:
        assert (status, headers["connection"]) == (400, "close") and "error" in body
    assert len(fake.calls) == 3


@pytest.mark.parametrize(("budget", "prompt", "max_tokens"),
                         [(100, 10, 40), (5, 50, 10), (0, 1, 1), (1000, 3, 7), (37, 1, 200)])
def test_budget_bound_holds_under_concurrent_requests(budget: int, prompt: int,
                                                      max_tokens: int) -> None:
    fake = FakeLLM(prompt_tokens=prompt)
    request = post("/v1/chat/completions",
                   {"messages": [{"role": "user", "content": "x"}], "max_tokens": max_tokens})

    async def scenario() -> tuple[list[int], GatewayUsage]:
        async with gateway_for(fake).session("cand", token_budget=budget) as session:
            answers = await asyncio.gather(*(raw_exchange(session.socket_path, request)
                                             for _ in range(20)))
            return [status for status, _, _ in answers], session.usage

    statuses, usage = asyncio.run(scenario())
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) == usage.requests and statuses.count(429) == usage.refused
    assert usage.total_tokens <= budget + prompt
    assert usage.total_tokens >= budget or usage.refused == 0
    assert all(body["max_tokens"] <= max_tokens for _, body in fake.calls)


def test_closing_a_session_cancels_a_request_in_flight() -> None:
    fake, log = FakeLLM(), UsageLog()
    request = post("/v1/completions", {"prompt": "never answered"})

    async def scenario() -> BaseException | tuple[Any, ...]:
        fake.gate = asyncio.Event()
        gateway = gateway_for(fake, log)
        async with gateway:
            session = gateway.session("cand", token_budget=10)
            await session.start()
            pending = asyncio.create_task(raw_exchange(session.socket_path, request))
            while not fake.calls:
                await asyncio.sleep(0.01)
        # leaving the gateway closed the session: the agent's connection ends unanswered
        return (await asyncio.gather(pending, return_exceptions=True))[0]

    result = asyncio.run(scenario())
    assert isinstance(result, asyncio.IncompleteReadError | ConnectionError)
    assert log.calls == [("cand", GatewayUsage())]


def test_session_arguments_are_checked() -> None:
    gateway = gateway_for(FakeLLM())
    with pytest.raises(ValueError, match="token_budget"):
        gateway.session("k", token_budget=-1)
    with pytest.raises(ValueError, match="max_tokens_cap"):
        gateway.session("k", max_tokens_cap=0)
    with pytest.raises(ValueError, match="model"):
        LLMGateway(FakeLLM(), [])
    with pytest.raises(RuntimeError, match="not started"):
        _ = gateway.session("k").socket_path
