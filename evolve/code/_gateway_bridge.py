"""The LLM gateway of sandboxed agents, forwarding to the run's task-model client.

Agents reach the LLM only through ``sandboxes.LLMGateway`` on a unix socket;
here its ``forward`` is the run's ``LLMClient`` (so agent requests share the
client's concurrency limit, retries and response cache) and ``count_tokens``
its server's tokenizer, and a session's
metered usage becomes an ``archive.Usage`` recorded with the candidate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from archive import Usage
from sandboxes import GatewayUsage, TokenCounter, UpstreamError, openai_completion

from .._errors import LLMError
from ..llm import LLMClient

Forward = Callable[[str, dict[str, Any]], Awaitable[Mapping[str, Any]]]


def client_forward(client: LLMClient) -> Forward:
    """A gateway ``forward`` that answers chat completions with ``client``."""

    async def forward(path: str, body: dict[str, Any]) -> Mapping[str, Any]:
        if path != "/v1/chat/completions":
            raise UpstreamError("this gateway serves chat completions only "
                                "(POST /v1/chat/completions)", 404)
        try:
            done = await client.chat(body["messages"], max_tokens=body.get("max_tokens"),
                                     temperature=body.get("temperature"),
                                     seed=body.get("seed"), stop=body.get("stop"))
        except LLMError as exc:
            raise UpstreamError(f"the model failed to answer: {type(exc).__name__}") from exc
        return openai_completion(path, body["model"], done.text,
                                 prompt_tokens=done.prompt_tokens,
                                 completion_tokens=done.completion_tokens,
                                 finish_reason=done.finish_reason)

    return forward


def client_token_counter(client: LLMClient) -> TokenCounter:
    """A gateway ``count_tokens`` asking ``client``'s server to count a chat prompt."""

    async def count_tokens(path: str, body: dict[str, Any]) -> int | None:
        if path != "/v1/chat/completions":
            return None
        return await client.count_prompt_tokens(body["messages"])

    return count_tokens


def gateway_usage(usage: GatewayUsage) -> Usage:
    """A session's metered usage as the archive records it (refused requests cost nothing)."""
    return Usage(calls=usage.requests, prompt_tokens=usage.prompt_tokens,
                 completion_tokens=usage.completion_tokens)
