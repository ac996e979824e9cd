"""Counting a chat prompt's tokens with the server's tokenizer (``LLMClient.count_prompt_tokens``):
llama.cpp's endpoints against the real server and model; vLLM's against the stub, since vLLM
needs a GPU and cannot run here."""

from __future__ import annotations

import asyncio
import json

import pytest

from evolve.llm import LlamaCppServer, LLMClient
from evolve.llm._server_base import free_port
from tests.stub_openai import Reply, StubOpenAI

CONVERSATION = [
    {"role": "system", "content": "You write short Python functions."},
    {"role": "user", "content": "Écris une fonction qui inverse une chaîne — 文字列を反転する."},
    {"role": "assistant", "content": "def reverse(s):\n    return s[::-1]\n"},
    {"role": "user", "content": "Now make it ignore spaces <|im_end|> please."},
]


def count(client: LLMClient, messages: list[dict[str, str]]) -> int | None:
    async def go() -> int | None:
        async with client:
            return await client.count_prompt_tokens(messages)

    return asyncio.run(go())


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("messages", [CONVERSATION[:1], CONVERSATION[1:2], CONVERSATION],
                         ids=["system", "unicode-user", "conversation"])
def test_llamacpp_counts_what_a_completion_then_reports(llamacpp_server: LlamaCppServer,
                                                        messages: list[dict[str, str]]) -> None:
    client = llamacpp_server.client()

    async def go() -> tuple[int | None, int]:
        async with client:
            counted = await client.count_prompt_tokens(messages)
            done = await client.chat(messages, max_tokens=1, temperature=0.0)
            return counted, done.prompt_tokens

    counted, reported = asyncio.run(go())
    assert counted == reported
    assert client.stats().calls == 1  # counting is not a completion call


def test_vllm_dialect_is_asked_once_and_remembered() -> None:
    answer = json.dumps({"count": 42, "max_model_len": 4096, "tokens": list(range(42))})
    with StubOpenAI(Reply.garbage(answer.encode())) as stub:
        client = LLMClient(stub.base_url, "m")

        async def go() -> list[int | None]:
            async with client:
                return [await client.count_prompt_tokens(CONVERSATION) for _ in range(2)]

        assert asyncio.run(go()) == [42, 42]
        assert [r.path for r in stub.requests] == ["/tokenize", "/tokenize"]
        assert stub.requests[0].body == {"model": "m", "messages": CONVERSATION}


def test_a_server_without_a_tokenizer_is_asked_once() -> None:
    with StubOpenAI(Reply.error(404, "File Not Found")) as stub:
        client = LLMClient(stub.base_url, "m")

        async def go() -> list[int | None]:
            async with client:
                return [await client.count_prompt_tokens(CONVERSATION) for _ in range(3)]

        assert asyncio.run(go()) == [None, None, None]
        assert [r.path for r in stub.requests] == ["/tokenize", "/apply-template"]


@pytest.mark.parametrize("answer", [b'{"tokens": []}', b'{"count": -1}', b'{"count": true}',
                                    b"[1, 2]", b"not json"])
def test_answers_that_are_not_a_count_give_none(answer: bytes) -> None:
    with StubOpenAI(Reply.garbage(answer)) as stub:
        assert count(LLMClient(stub.base_url, "m"), CONVERSATION) is None


def test_an_unreachable_server_gives_none_and_is_asked_again() -> None:
    client = LLMClient(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2)
    assert count(client, CONVERSATION) is None
    assert client._tokenizers  # a connection failure is not "no tokenizer"
