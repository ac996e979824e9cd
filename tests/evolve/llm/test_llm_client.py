"""LLMClient against the scriptable stub server: requests, retries, failures, cache."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evolve._errors import LLMError, LLMResponseError
from evolve.llm import ClientStats, Completion, LLMClient, request_key
from evolve.llm._server_base import free_port
from tests.stub_openai import Reply, StubOpenAI

USER = [{"role": "user", "content": "hello"}]


def client_for(stub: StubOpenAI, **options: Any) -> LLMClient:
    options.setdefault("backoff", 0.001)
    return LLMClient(stub.base_url, "stub-model", **options)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def chat_once(client: LLMClient, messages: list[dict[str, str]] = USER,
                    **kw: Any) -> Completion:
    async with client:
        return await client.chat(messages, **kw)


# -- the request ---------------------------------------------------------------------------
def test_chat_returns_the_completion_and_counts_tokens(stub: StubOpenAI) -> None:
    client = client_for(stub)
    completion = run(chat_once(client))
    assert completion == Completion("echo: hello", 7, 3, "stop", cached=False)
    assert client.stats() == ClientStats(calls=1, prompt_tokens=7, completion_tokens=3)
    (received,) = stub.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["content-type"] == "application/json"
    assert "authorization" not in received.headers


def test_body_has_model_messages_and_only_the_parameters_given(stub: StubOpenAI) -> None:
    client = client_for(stub, default_params={"temperature": 0.5, "top_p": 0.9})
    run(chat_once(client, max_tokens=12, seed=3, stop=["\n"]))
    assert stub.bodies[0] == {"model": "stub-model", "messages": USER, "temperature": 0.5,
                              "top_p": 0.9, "max_tokens": 12, "seed": 3, "stop": ["\n"]}


def test_explicit_parameters_override_default_params(stub: StubOpenAI) -> None:
    client = client_for(stub, default_params={"temperature": 0.5, "max_tokens": 99})
    run(chat_once(client, temperature=0.0))
    assert stub.bodies[0]["temperature"] == 0.0
    assert stub.bodies[0]["max_tokens"] == 99


def test_connections_are_kept_alive(stub: StubOpenAI) -> None:
    client = client_for(stub)

    async def many() -> None:
        async with client:
            for i in range(20):
                await client.chat([{"role": "user", "content": f"q{i}"}])

    run(many())
    assert len(stub.requests) == 20
    assert stub.connections == 1


def test_chunked_and_connection_close_responses_are_read(stub: StubOpenAI) -> None:
    stub.script(Reply.chunked("first"), Reply.ok("second", close=True),
                Reply.until_close("third"), Reply.ok("fourth"))
    client = client_for(stub)

    async def four() -> list[str]:
        async with client:
            return [(await client.chat([{"role": "user", "content": str(i)}])).text
                    for i in range(4)]

    assert run(four()) == ["first", "second", "third", "fourth"]
    assert stub.connections == 3  # a new connection after each close
    assert client.stats().retries == 0


def test_empty_content_is_a_valid_completion(stub: StubOpenAI) -> None:
    stub.script(Reply.empty())
    client = client_for(stub)
    assert run(chat_once(client)).text == ""
    assert len(stub.requests) == 1
    assert client.stats().retries == 0


def test_concurrency_is_limited_and_used(stub: StubOpenAI) -> None:
    stub.default = Reply.slow(0.05)
    client = client_for(stub, max_concurrency=3)

    async def twelve() -> list[Completion]:
        async with client:
            return await asyncio.gather(*(
                client.chat([{"role": "user", "content": f"q{i}"}]) for i in range(12)))

    results = run(twelve())
    assert [c.text for c in results] == [f"echo: q{i}" for i in range(12)]
    assert stub.max_active == 3


# -- retries and failures ----------------------------------------------------------------
def test_server_errors_are_retried_then_succeed(stub: StubOpenAI) -> None:
    stub.script(Reply.error(500), Reply.error(503), Reply.error(429), Reply.ok("done"))
    client = client_for(stub)
    assert run(chat_once(client)).text == "done"
    assert len(stub.requests) == 4
    assert client.stats() == ClientStats(calls=1, prompt_tokens=7, completion_tokens=3,
                                         retries=3)


def test_retries_exhausted_raise_llm_error_naming_url_and_cause(stub: StubOpenAI) -> None:
    stub.default = Reply.error(500, "CUDA out of memory")
    client = client_for(stub, max_retries=2)
    with pytest.raises(LLMError) as info:
        run(chat_once(client))
    message = str(info.value)
    assert stub.base_url in message
    assert "HTTP 500" in message and "CUDA out of memory" in message
    assert "3 attempts" in message and "log" in message
    assert len(stub.requests) == 3
    assert client.stats() == ClientStats(retries=2, failures=1)


def test_refused_connection_says_to_check_the_server() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    client = LLMClient(url, "m", max_retries=1, backoff=0.001)
    with pytest.raises(LLMError) as info:
        run(chat_once(client))
    message = str(info.value)
    assert url in message and "connection refused" in message
    assert "Is the server running? Check llm.base_url" in message
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert client.stats() == ClientStats(retries=1, failures=1)


def test_role_names_the_config_section_in_messages() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = LLMClient(url, "m", max_retries=0, role="mutator")
    with pytest.raises(LLMError, match=r"mutator LLM server .* Check mutator\.base_url"):
        run(chat_once(client))


def test_a_timeout_is_retried(stub: StubOpenAI) -> None:
    stub.script(Reply.slow(2.0), Reply.ok("in time"))
    client = client_for(stub, timeout=0.2)
    assert run(chat_once(client)).text == "in time"
    assert client.stats().retries == 1


def test_timeouts_exhausted_say_what_to_tune(stub: StubOpenAI) -> None:
    stub.default = Reply.slow(2.0)
    client = client_for(stub, timeout=0.1, max_retries=1)
    with pytest.raises(LLMError) as info:
        run(chat_once(client))
    message = str(info.value)
    assert "did not answer" in message and "0.1 s" in message
    assert "llm.timeout" in message and "llm.max_concurrency" in message
    assert not isinstance(info.value, LLMResponseError)


@pytest.mark.parametrize("reply", [Reply.garbage(), Reply.no_choices(),
                                   Reply.garbage(b'{"choices": [{"message": {"role": "x"}}]}'),
                                   Reply.garbage(b"[1, 2]")],
                         ids=["html", "no-choices", "no-content", "json-list"])
def test_garbage_is_retried_then_raises_response_error(stub: StubOpenAI, reply: Reply) -> None:
    stub.default = reply
    client = client_for(stub, max_retries=2)
    with pytest.raises(LLMResponseError) as info:
        run(chat_once(client))
    assert "no usable completion" in str(info.value) and "3 attempts" in str(info.value)
    assert len(stub.requests) == 3


def test_garbage_then_a_good_answer_succeeds(stub: StubOpenAI) -> None:
    stub.script(Reply.garbage(), Reply.ok("good"))
    assert run(chat_once(client_for(stub))).text == "good"


@pytest.mark.parametrize(("status", "hint"), [(400, "llm.model"), (401, "API key"),
                                              (404, "llm.base_url"), (422, "llm.model")])
def test_client_errors_are_not_retried(stub: StubOpenAI, status: int, hint: str) -> None:
    stub.default = Reply.error(status, "the server's reason")
    client = client_for(stub)
    with pytest.raises(LLMError) as info:
        run(chat_once(client))
    message = str(info.value)
    assert f"HTTP {status}" in message and "the server's reason" in message and hint in message
    assert len(stub.requests) == 1
    assert client.stats() == ClientStats(failures=1)


def test_a_dropped_connection_is_retried(stub: StubOpenAI) -> None:
    stub.script(Reply.drop(), Reply.ok("after drop"))
    client = client_for(stub)
    assert run(chat_once(client)).text == "after drop"
    assert len(stub.requests) == 2


def test_a_dropped_keep_alive_connection_is_resent_at_once(stub: StubOpenAI) -> None:
    client = client_for(stub, max_retries=0)

    async def two() -> str:
        async with client:
            await client.chat([{"role": "user", "content": "first"}])
            stub.script(Reply.drop())  # the server drops the idle connection's next request
            return (await client.chat([{"role": "user", "content": "second"}])).text

    assert run(two()) == "echo: second"
    assert len(stub.requests) == 3
    assert client.stats().retries == 0


def test_a_bad_base_url_is_a_clear_error() -> None:
    with pytest.raises(LLMError, match="not an http"):
        run(chat_once(LLMClient("localhost:8000/v1", "m")))


# -- cache and coalescing ----------------------------------------------------------------
def test_cache_hit_costs_nothing_and_sends_nothing(stub: StubOpenAI, cache: Any) -> None:
    client = client_for(stub, cache=cache)

    async def twice() -> tuple[Completion, Completion]:
        async with client:
            return await client.chat(USER, seed=1), await client.chat(USER, seed=1)

    first, second = run(twice())
    assert first == Completion("echo: hello", 7, 3, "stop", cached=False)
    assert second == Completion("echo: hello", 0, 0, "stop", cached=True)
    assert len(stub.requests) == 1
    assert client.stats() == ClientStats(calls=1, cache_hits=1, prompt_tokens=7,
                                         completion_tokens=3)
    (key,) = cache.items
    request, response = cache.items[key]
    assert key == request_key(stub.bodies[0]) == request_key(request)
    assert request == stub.bodies[0]
    assert response["choices"][0]["message"]["content"] == "echo: hello"


def test_cache_hit_needs_no_server(stub: StubOpenAI, cache: Any) -> None:
    run(chat_once(client_for(stub, cache=cache)))
    dead = LLMClient(f"http://127.0.0.1:{free_port()}/v1", "stub-model", cache=cache,
                     max_retries=0)
    assert run(chat_once(dead)).cached
    assert dead.stats().cache_hits == 1


def test_any_change_of_the_request_misses_the_cache(stub: StubOpenAI, cache: Any) -> None:
    client = client_for(stub, cache=cache)

    async def variants() -> None:
        async with client:
            await client.chat(USER)
            await client.chat(USER, seed=2)
            await client.chat(USER, temperature=0.1)
            await client.chat([{"role": "user", "content": "other"}])

    run(variants())
    assert len(stub.requests) == 4 and len(cache.items) == 4


def test_failures_are_not_cached(stub: StubOpenAI, cache: Any) -> None:
    stub.script(Reply.error(400))
    with pytest.raises(LLMError):
        run(chat_once(client_for(stub, cache=cache)))
    assert cache.items == {}


def test_identical_concurrent_requests_are_sent_once(stub: StubOpenAI) -> None:
    stub.default = Reply.slow(0.05, "shared")
    client = client_for(stub)

    async def together() -> list[Completion]:
        async with client:
            return await asyncio.gather(*(client.chat(USER) for _ in range(5)))

    results = run(together())
    assert len(stub.requests) == 1
    assert [c.text for c in results] == ["shared"] * 5
    assert sum(not c.cached for c in results) == 1
    assert client.stats() == ClientStats(calls=1, coalesced=4, prompt_tokens=7,
                                         completion_tokens=3)


def test_a_waiting_caller_survives_the_cancellation_of_the_sender(stub: StubOpenAI) -> None:
    stub.default = Reply.slow(0.1, "still here")
    client = client_for(stub)

    async def scenario() -> tuple[Completion, bool]:
        async with client:
            sender = asyncio.ensure_future(client.chat(USER))
            await asyncio.sleep(0.02)
            waiter = asyncio.ensure_future(client.chat(USER))
            await asyncio.sleep(0.02)
            sender.cancel()
            completion = await waiter
            return completion, sender.cancelled()

    completion, cancelled = run(scenario())
    assert cancelled
    assert completion == Completion("still here", 7, 3, "stop", cached=False)
    assert len(stub.requests) == 2  # the waiter sent it again itself
    assert client.stats().coalesced == 0


def test_a_cancelled_waiter_does_not_cancel_the_sender(stub: StubOpenAI) -> None:
    stub.default = Reply.slow(0.1, "for the sender")
    client = client_for(stub)

    async def scenario() -> Completion:
        async with client:
            sender = asyncio.ensure_future(client.chat(USER))
            await asyncio.sleep(0.02)
            waiter = asyncio.ensure_future(client.chat(USER))
            await asyncio.sleep(0.02)
            waiter.cancel()
            return await sender

    assert run(scenario()).text == "for the sender"
    assert len(stub.requests) == 1


def test_failures_are_shared_with_waiting_callers(stub: StubOpenAI) -> None:
    stub.default = Reply.error(400, "nope", delay=0.05)
    client = client_for(stub)

    async def together() -> list[Any]:
        async with client:
            return await asyncio.gather(*(client.chat(USER) for _ in range(3)),
                                        return_exceptions=True)

    results = run(together())
    assert all(isinstance(r, LLMError) and "nope" in str(r) for r in results)
    assert len(stub.requests) == 1


# -- secrets -----------------------------------------------------------------------------
def test_api_key_is_sent_as_bearer_and_never_shown(stub: StubOpenAI) -> None:
    client = client_for(stub, api_key="sk-secret-123")
    run(chat_once(client))
    assert stub.requests[0].headers["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in repr(client) and "sk-secret-123" not in str(client)
