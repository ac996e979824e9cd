"""Counting a chat prompt's tokens with the server's own tokenizer.

The OpenAI API has no tokenizer endpoint, but the servers the framework runs
have one beside it, and both apply the model's chat template first:

- vLLM: ``POST /tokenize`` with ``{"model", "messages"}`` answers ``{"count": n, ...}``;
- llama.cpp: ``POST /apply-template`` with ``{"messages"}`` answers
  ``{"prompt": text}``, and ``POST /tokenize`` with ``{"content": text,
  "add_special": true}`` answers ``{"tokens": [...]}``.

:func:`count_chat_tokens` tries the dialect that worked before (vLLM's first,
since llama.cpp answers its request with an empty list and no count), and
reports which one worked, so that a server with neither is asked once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from evolve.llm._cache_key import canonical_json
from evolve.llm._http import HTTPPool

__all__ = ["DIALECTS", "count_chat_tokens"]

#: The tokenizer dialects, in the order they are tried.
DIALECTS = ("vllm", "llamacpp")


async def count_chat_tokens(pool: HTTPPool, model: str, messages: Sequence[dict[str, str]],
                            dialects: Sequence[str] = DIALECTS) -> tuple[int, str] | None:
    """The prompt tokens of ``messages`` under the server's chat template and the dialect
    that counted them, or None when no dialect in ``dialects`` works on this server.

    Raises ``OSError`` (``TimeoutError`` included) when the server cannot be reached.
    """
    for dialect in dialects:
        if dialect == "vllm":
            data = await _post(pool, "/tokenize", {"model": model, "messages": list(messages)})
            count = data.get("count") if data else None
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                return count, dialect
        elif dialect == "llamacpp":
            data = await _post(pool, "/apply-template", {"messages": list(messages)})
            prompt = data.get("prompt") if data else None
            if isinstance(prompt, str):
                data = await _post(pool, "/tokenize", {"content": prompt, "add_special": True})
                tokens = data.get("tokens") if data else None
                if isinstance(tokens, list):
                    return len(tokens), dialect
    return None


async def _post(pool: HTTPPool, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object a 2xx answer carries, or None for any other answer."""
    response = await pool.request("POST", path, canonical_json(body), beside_api=True)
    if not 200 <= response.status < 300:
        return None
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
