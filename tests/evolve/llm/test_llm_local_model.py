"""LLMClient against the real llama.cpp server running the real SmolLM2 model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from evolve.llm import ClientStats, Completion, LlamaCppServer, LLMClient
from evolve.llm._server_base import free_port

pytestmark = [pytest.mark.model, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def ask(server: LlamaCppServer, messages: list[dict[str, str]] = QUESTION,
        client: LLMClient | None = None, **kw: Any) -> Completion:
    async def go() -> Completion:
        async with client or server.client() as c:
            return await c.chat(messages, **kw)

    return asyncio.run(go())


def test_server_reports_its_url_and_model(llamacpp_server: LlamaCppServer) -> None:
    assert llamacpp_server.base_url.startswith("http://127.0.0.1:")
    assert llamacpp_server.base_url.endswith("/v1")
    assert llamacpp_server.model == "SmolLM2-135M-Instruct.Q4_1"


def test_a_real_chat_completion_with_token_counts(llamacpp_server: LlamaCppServer) -> None:
    client = llamacpp_server.client()
    completion = ask(llamacpp_server, client=client, max_tokens=12, temperature=0.0)
    assert isinstance(completion.text, str) and completion.text.strip()
    assert completion.prompt_tokens > 5
    assert 0 < completion.completion_tokens <= 12
    assert completion.finish_reason in ("stop", "length")
    assert not completion.cached
    assert client.stats() == ClientStats(calls=1, prompt_tokens=completion.prompt_tokens,
                                         completion_tokens=completion.completion_tokens)


def test_max_tokens_is_honoured(llamacpp_server: LlamaCppServer) -> None:
    completion = ask(llamacpp_server, [{"role": "user", "content": "Count from 1 to 50."}],
                     max_tokens=3, temperature=0.0)
    assert completion.completion_tokens == 3
    assert completion.finish_reason == "length"


def test_many_requests_in_flight_all_succeed(llamacpp_server: LlamaCppServer) -> None:
    client = llamacpp_server.client(max_concurrency=8)

    async def eight() -> list[Completion]:
        async with client:
            return await asyncio.gather(*(
                client.chat([{"role": "user", "content": f"Say the number {i}."}],
                            max_tokens=6, temperature=0.0)
                for i in range(8)))

    results = asyncio.run(eight())
    assert len(results) == 8
    assert all(c.completion_tokens > 0 and not c.cached for c in results)
    stats = client.stats()
    assert (stats.calls, stats.failures, stats.retries) == (8, 0, 0)


def test_cache_hit_costs_no_tokens_and_needs_no_server(llamacpp_server: LlamaCppServer,
                                                       cache: Any) -> None:
    client = llamacpp_server.client(cache=cache)

    async def twice() -> tuple[Completion, Completion]:
        async with client:
            first = await client.chat(QUESTION, max_tokens=8, temperature=0.0)
            return first, await client.chat(QUESTION, max_tokens=8, temperature=0.0)

    first, second = asyncio.run(twice())
    assert not first.cached and first.completion_tokens > 0
    assert second == Completion(first.text, 0, 0, first.finish_reason, cached=True)
    stats = client.stats()
    assert (stats.calls, stats.cache_hits) == (1, 1)
    assert stats.completion_tokens == first.completion_tokens
    # the same request through a client whose server does not exist: served from the cache
    dead = LLMClient(f"http://127.0.0.1:{free_port()}/v1", llamacpp_server.model,
                     cache=cache, max_retries=0)
    assert ask(llamacpp_server, client=dead, max_tokens=8, temperature=0.0) == second


def test_same_seed_same_text(llamacpp_server: LlamaCppServer) -> None:
    prompt = [{"role": "user", "content": "Write a short sentence about cats."}]
    client = llamacpp_server.client()  # no cache: both requests reach the server

    async def sample() -> list[str]:
        async with client:
            return [(await client.chat(prompt, max_tokens=10, temperature=1.0, seed=s)).text
                    for s in (11, 11, 12, 13, 14)]

    texts = asyncio.run(sample())
    assert texts[0] == texts[1]
    assert len(set(texts[1:])) > 1  # other seeds sample other texts
    assert client.stats().calls == 5
