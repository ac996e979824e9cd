"""The managed llama.cpp server gives every slot its own context: requests in flight together
cannot fill a shared cache and fail each other (llama.cpp fails every request in flight when
its cache is full); a request that outgrows its slot ends with finish_reason "length"."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from evolve.llm import LlamaCppServer

from .conftest import local_model_missing

SLOT = 256  # tokens per slot; each request below wants more than that


def ask(base_url: str, model: str, i: int) -> dict:
    """A chat completion that never stops by itself (``ignore_eos``): ~150 prompt tokens and
    400 completion tokens asked for, more than a slot holds."""
    body = {"model": model, "max_tokens": 400, "ignore_eos": True, "seed": i,
            "messages": [{"role": "user", "content": f"{i}: " + "Count upwards. " * 50}]}
    request = urllib.request.Request(f"{base_url}/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


@pytest.mark.model
@pytest.mark.slow
def test_concurrent_requests_each_fill_their_own_slot_and_all_are_answered() -> None:
    reason = local_model_missing()
    if reason:
        pytest.skip(reason)
    server = LlamaCppServer(n_parallel=3, n_ctx=SLOT, threads=1, seed=1)
    asyncio.run(server.start())
    try:
        # three at once would need about 3 x 550 tokens of a cache of 3 x 256 if shared
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(lambda i: ask(server.base_url, server.model, i), range(3)))
    finally:
        asyncio.run(server.stop())
    for answer in answers:
        usage = answer["usage"]
        assert 100 < usage["prompt_tokens"] < SLOT
        assert answer["choices"][0]["finish_reason"] == "length"
        assert usage["prompt_tokens"] + usage["completion_tokens"] <= SLOT
