"""What an agent may ask the LLM gateway (a whitelist of OpenAI fields), errors, response shapes.

The body that reaches the run's LLM client is rebuilt from the agent's body,
field by field: ``messages`` (chat) or ``prompt`` (completions), ``max_tokens``
(``max_completion_tokens`` is read as its alias), ``temperature``, ``top_p``,
``stop`` (a string becomes a one-item list), ``seed``, and ``n`` (only 1).
``model`` is always one the gateway serves. Every other field (tools, logit
bias, response formats, user ids, ...) is dropped; ``stream: true`` is refused.

:func:`prompt_token_bound` is the budget's upper estimate of a body's prompt
tokens: byte-level BPE tokenizers spend at least one UTF-8 byte per token, and
chat templates add a few tokens per message and per request.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from ._untrusted import UntrustedDataError, untrusted_json

__all__ = ["CHAT_PATH", "COMPLETIONS_PATH", "MESSAGE_OVERHEAD_TOKENS", "MODELS_PATH",
           "REQUEST_OVERHEAD_TOKENS", "GatewayHTTPError", "clean_body", "error_body",
           "models_body", "openai_completion", "parse_body", "prompt_token_bound", "usage_of"]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"

_ROLES = frozenset({"system", "user", "assistant"})
_KNOWN = frozenset({"model", "messages", "prompt", "max_tokens", "max_completion_tokens",
                    "temperature", "top_p", "stop", "seed", "n", "stream"})
_MAX_STOPS = 4

#: Tokens a chat template may add around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 8
#: Tokens a template may add once per request (BOS, generation prompt, a default system prompt).
REQUEST_OVERHEAD_TOKENS = 32


def error_body(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """An error payload in OpenAI's format."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class GatewayHTTPError(Exception):
    """A request the gateway answers with an error status (JSON in OpenAI's format).

    ``close`` asks for the connection to be closed after the answer (the
    request's framing cannot be trusted, or its body was not read).
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


def _bad(message: str, code: str = "invalid_field") -> GatewayHTTPError:
    return GatewayHTTPError(400, message, code=code)


def parse_body(path: str, data: bytes, models: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The whitelisted body for ``path`` from the raw request ``data``, and the fields dropped.

    Raises :class:`GatewayHTTPError` (400) for anything :func:`clean_body` refuses
    and for data that is not JSON (invalid UTF-8, nested too deeply, ...). The
    parsed document is dropped on return, so only the small whitelisted body
    stays alive while the request is forwarded.
    """
    try:
        raw = untrusted_json(data)
    except UntrustedDataError as exc:
        raise _bad(f"the request body is not valid JSON: {str(exc)[:200]}",
                   "invalid_json") from None
    body = clean_body(path, raw, models)
    return body, sorted(set(raw) - _KNOWN)


def clean_body(path: str, raw: Any, models: Sequence[str]) -> dict[str, Any]:
    """The whitelisted body for ``path`` built from the agent's parsed JSON ``raw``.

    Raises :class:`GatewayHTTPError` (400) for a body that is not a JSON object,
    asks to stream, asks for ``n`` other than 1, or has a whitelisted field of
    the wrong type or range.
    """
    if not isinstance(raw, dict):
        raise _bad("the request body must be a JSON object", "invalid_json")
    if raw.get("stream"):
        raise _bad("streaming is not supported by the Cladeforge LLM gateway; send the request "
                   "without \"stream\" (or with \"stream\": false) and read the whole response",
                   "stream_not_supported")
    n = raw.get("n", 1)
    if n is not None and (isinstance(n, bool) or n != 1):
        raise _bad(f"only n=1 is supported, got n={n!r}; send one request per completion",
                   "n_not_supported")
    requested = raw.get("model")
    body: dict[str, Any] = {"model": requested if requested in models else models[0]}
    if path == CHAT_PATH:
        body["messages"] = _messages(raw.get("messages"))
    else:
        body["prompt"] = _prompt(raw.get("prompt"))
    max_tokens = raw.get("max_tokens", raw.get("max_completion_tokens"))
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad(f"max_tokens must be a positive integer, got {max_tokens!r}")
        body["max_tokens"] = max_tokens
    for name, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = raw.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    low <= value <= high):
                raise _bad(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
            body[name] = value
    seed = raw.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad(f"seed must be an integer, got {seed!r}")
        body["seed"] = seed
    stop = raw.get("stop")
    if stop is not None:
        body["stop"] = _stop(stop)
    return body


def prompt_token_bound(body: Mapping[str, Any]) -> int:
    """An upper estimate of the prompt tokens of a whitelisted ``body``.

    The UTF-8 bytes of its texts (a byte-level BPE token covers at least one
    byte), plus ``MESSAGE_OVERHEAD_TOKENS`` per message and
    ``REQUEST_OVERHEAD_TOKENS`` once for what a chat template adds.
    """
    messages = body.get("messages")
    if messages is None:
        return len(body.get("prompt", "").encode("utf-8")) + REQUEST_OVERHEAD_TOKENS
    return (sum(len(m["content"].encode("utf-8")) for m in messages)
            + MESSAGE_OVERHEAD_TOKENS * len(messages) + REQUEST_OVERHEAD_TOKENS)


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _bad("messages must be a non-empty list of {\"role\", \"content\"} objects")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}] must be an object with \"role\" and \"content\"")
        role = message.get("role")
        if role not in _ROLES:
            raise _bad(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {role!r}")
        out.append({"role": role, "content": _content(message.get("content"), i)})
    return out


def _content(value: Any, i: int) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in value):
        return "".join(p["text"] for p in value)
    raise _bad(f"messages[{i}].content must be a string (or a list of text parts); "
               "images, audio and tool calls are not supported")


def _prompt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise _bad("prompt must be a string (one prompt per request)")


def _stop(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, list) or len(stops) > _MAX_STOPS
            or not all(isinstance(s, str) and s for s in stops)):
        raise _bad(f"stop must be a non-empty string or a list of up to {_MAX_STOPS} of them")
    return stops


def models_body(models: Sequence[str]) -> dict[str, Any]:
    """The ``GET /v1/models`` answer."""
    return {"object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "cladeforge"}
                     for m in models]}


def usage_of(response: Mapping[str, Any]) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` from a response's ``usage`` (0 when missing)."""
    usage = response.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            logger.warning("LLM gateway: response without usage.%s; counted as 0", name)
            value = 0
        counts.append(value)
    return counts[0], counts[1]


def openai_completion(path: str, model: str, text: str, *, prompt_tokens: int,
                      completion_tokens: int, finish_reason: str = "stop") -> dict[str, Any]:
    """An OpenAI-shaped response for ``path`` (chat or completions), for ``forward`` callables
    whose client returns only text and token counts."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if path == COMPLETIONS_PATH:
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish_reason}
        kind = "text_completion"
    else:
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "finish_reason": finish_reason}
        kind = "chat.completion"
    return {"id": f"cf-{secrets.token_hex(8)}", "object": kind, "created": 0, "model": model,
            "choices": [choice], "usage": usage}
