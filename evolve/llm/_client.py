"""One async client for every OpenAI-compatible chat server.

vLLM's server, llama.cpp's server, Ollama and hosted APIs all speak
``POST {base_url}/chat/completions``. The client keeps many requests in flight
(up to ``max_concurrency``) so that a server can batch them, retries what can be
retried, counts tokens, and consults a response cache (the archive) first, so a
resumed or replayed run never pays twice for the same request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from evolve._errors import LLMError, LLMRejectedError, LLMResponseError
from evolve.llm._cache_key import canonical_json
from evolve.llm._http import HTTPPool
from evolve.llm._response_cache import ResponseCache
from evolve.llm._tokens import DIALECTS, count_chat_tokens
from evolve.llm._types import Completion, Embedding

_Answer = TypeVar("_Answer", Completion, Embedding)

__all__ = ["ClientStats", "LLMClient", "ResponseCache"]

logger = logging.getLogger(__name__)

_MAX_DELAY = 60.0  # seconds, cap of one backoff sleep (also of a server's Retry-After)


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters.

    ``calls`` counts requests the server answered with a usable completion (one
    per request, however many attempts it took); ``retries`` counts the extra
    attempts; ``failures`` the requests that ended in an error. ``cache_hits``
    were served from the cache and ``coalesced`` shared the answer of an
    identical request already in flight; neither cost tokens.
    """

    calls: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0


class _Garbage(Exception):
    """The server answered 2xx with something that is not a usable completion."""


class LLMClient:
    """Async client of an OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` includes the API prefix (``http://127.0.0.1:8000/v1``).
    ``role`` names the client in messages and logs, and the config section that
    a message tells the user to check (``llm`` -> ``llm.base_url``). The API key
    is kept in memory only and never appears in ``repr``. ``grammar_field`` is the
    request field in which the server takes a GBNF grammar that constrains the
    answer (llama.cpp: ``grammar``, vLLM: ``guided_grammar``; a dotted name such
    as ``structured_outputs.grammar`` nests it); None: the server cannot be
    constrained, and a grammar given to ``chat`` is not sent.

    Use one client per event loop; ``aclose()`` it (or use ``async with``) when
    done.
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 max_concurrency: int = 8, timeout: float = 120.0, max_retries: int = 4,
                 backoff: float = 0.5, cache: ResponseCache | None = None,
                 default_params: Mapping[str, Any] | None = None, role: str = "llm",
                 grammar_field: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.cache = cache
        self.default_params: Mapping[str, Any] = dict(default_params or {})
        self.role = role
        self.grammar_field = grammar_field
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: HTTPPool | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._rng: random.Random | None = None
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._counts = dict.fromkeys(ClientStats.__dataclass_fields__, 0)
        self._tokenizers: tuple[str, ...] = DIALECTS  # narrowed to the one that works

    def __repr__(self) -> str:
        return (f"LLMClient(base_url={self.base_url!r}, model={self.model!r}, "
                f"role={self.role!r}, api_key={'***' if self._api_key else None})")

    def stats(self) -> ClientStats:
        """The counters as a frozen snapshot."""
        return ClientStats(**self._counts)

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (requests still in flight fail or are retried)."""
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.aclose()
        self._pool = self._semaphore = self._loop = None

    # -- the request path ---------------------------------------------------------------
    @property
    def constrains(self) -> bool:
        """True when a grammar given to ``chat`` reaches the server."""
        return self.grammar_field is not None

    async def chat(self, messages: list[dict[str, str]], *, max_tokens: int | None = None,
                   temperature: float | None = None, seed: int | None = None,
                   stop: list[str] | None = None, grammar: str | None = None) -> Completion:
        """One chat completion.

        Parameters left at None are not sent (the server's default, or the
        client's ``default_params``, applies); ``grammar`` (GBNF) only when the
        server takes one (``constrains``). Served from the cache when the
        identical request was answered before (``cached=True``, no tokens
        counted); an identical request already in flight is awaited, not resent.

        Raises :class:`LLMError` when the server cannot be reached or keeps
        failing, or rejects the request (4xx), and :class:`LLMResponseError`
        when it keeps answering with something that is not a completion.
        """
        body: dict[str, Any] = dict(self.default_params)
        body["model"] = self.model
        body["messages"] = messages
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        if stop is not None:
            body["stop"] = stop
        if grammar is not None and self.grammar_field is not None:
            *outer, field = self.grammar_field.split(".")
            node = body
            for name in outer:
                node = node.setdefault(name, {})
            node[field] = grammar
        data = canonical_json(body)
        key = hashlib.sha256(data).hexdigest()

        cached = self._cached(key, _parse)
        if cached is not None:
            return _free(cached)

        while (shared := self._inflight.get(key)) is not None:
            self._counts["coalesced"] += 1
            try:
                # shielded: this caller's cancellation must not cancel the shared answer
                return _free(await asyncio.shield(shared))
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not shared.cancelled() or (current is not None and current.cancelling()):
                    raise
                self._counts["coalesced"] -= 1  # its sender was cancelled: send it ourselves
        shared = asyncio.get_running_loop().create_future()
        self._inflight[key] = shared
        try:
            completion = await self._fetch(data, key, "/chat/completions", _parse)
        except asyncio.CancelledError:
            shared.cancel()
            raise
        except BaseException as exc:
            shared.set_exception(exc)
            shared.exception()  # retrieved: there may be no other caller waiting
            raise
        else:
            shared.set_result(completion)
            return completion
        finally:
            del self._inflight[key]

    async def embed(self, text: str) -> Embedding:
        """The server's embedding of ``text`` (``/embeddings``), cached like ``chat`` (the
        same text gives the same vector on a resumed run). Raises as ``chat`` does; a
        server without the endpoint rejects the request (``LLMRejectedError``)."""
        body = {"model": self.model, "input": [text]}
        data = canonical_json(body)
        key = hashlib.sha256(data).hexdigest()
        cached = self._cached(key, _parse_embedding)
        if cached is not None:
            return Embedding(cached.vector, 0, cached=True)
        return await self._fetch(data, key, "/embeddings", _parse_embedding)

    def _cached(self, key: str, parse: Callable[[Any], _Answer]) -> _Answer | None:
        """The cached answer to the request ``key`` as ``parse`` reads it (None: none, or
        one that is unusable, which is then asked for again)."""
        hit = None if self.cache is None else self.cache.cache_get(key)
        if hit is None:
            return None
        try:
            answer = parse(hit)
        except _Garbage as exc:
            logger.warning("%s: ignoring unusable cached response %s: %s", self.role,
                           key[:12], exc)
            return None
        self._counts["cache_hits"] += 1
        return answer

    async def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """The prompt tokens the server counts for ``messages`` (its chat template applied),
        from its tokenizer endpoints (see ``_tokens``); None when it has none or does not
        answer. Never raises for the server's sake; never cached or counted as a call."""
        if not self._tokenizers:
            return None
        pool, semaphore, _ = self._ensure()
        try:
            async with semaphore, asyncio.timeout(self.timeout):
                found = await count_chat_tokens(pool, self.model, messages, self._tokenizers)
        except OSError as exc:  # TimeoutError included: ask again next time
            logger.debug("%s: counting prompt tokens failed: %s", self.role, _describe(exc))
            return None
        if found is None:
            logger.info("%s at %s has no tokenizer endpoint (vLLM's or llama.cpp's); prompt "
                        "sizes are bounded by their bytes", _who(self.role), self.base_url)
            self._tokenizers = ()
            return None
        count, dialect = found
        self._tokenizers = (dialect,)
        return count

    def _ensure(self) -> tuple[HTTPPool, asyncio.Semaphore, random.Random]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._pool is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            pool = HTTPPool(self.base_url, extra_headers=headers)
            try:
                pool.base_path  # noqa: B018 - validates the URL
            except ValueError as exc:
                raise LLMError(f"{self.role}.base_url {self.base_url!r} is not an http(s) URL; "
                               f"set it to the server's OpenAI-compatible URL, e.g. "
                               f"http://127.0.0.1:8000/v1") from exc
            self._pool, self._loop = pool, loop
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        if self._rng is None:
            self._rng = random.Random()  # backoff jitter only; no effect on results
        assert self._semaphore is not None
        return self._pool, self._semaphore, self._rng

    async def _fetch(self, data: bytes, key: str, path: str,
                     parse: Callable[[Any], _Answer]) -> _Answer:
        """POST ``data`` to ``path`` with retries; the answer as ``parse`` reads it (which
        raises ``_Garbage`` for a body that is not one), counted and cached."""
        pool, semaphore, rng = self._ensure()
        attempts = self.max_retries + 1
        kind, cause, last_exc, retry_after = "", "", None, 0.0
        for attempt in range(attempts):
            if attempt:
                self._counts["retries"] += 1
                delay = self.backoff * 2 ** (attempt - 1) * (0.5 + rng.random())
                delay = min(max(delay, retry_after), _MAX_DELAY)
                logger.debug("%s: retry %d/%d in %.2fs after %s", self.role, attempt,
                             self.max_retries, delay, cause)
                await asyncio.sleep(delay)
            retry_after = 0.0
            try:
                async with semaphore, asyncio.timeout(self.timeout):
                    response = await pool.request("POST", path, data)
            except TimeoutError as exc:  # before OSError: TimeoutError is one
                kind, cause, last_exc = "timeout", f"no answer within {self.timeout:g} s", exc
                continue
            except OSError as exc:
                kind, cause, last_exc = "connect", _describe(exc), exc
                continue
            if 200 <= response.status < 300:
                try:
                    answer = parse(json.loads(response.body))
                except (ValueError, _Garbage) as exc:
                    reason = "not JSON" if isinstance(exc, ValueError) else str(exc)
                    kind, last_exc = "garbage", exc
                    cause = f"{reason} (body starts {response.body[:80]!r})"
                    continue
                self._counts["calls"] += 1
                self._counts["prompt_tokens"] += answer.prompt_tokens
                self._counts["completion_tokens"] += answer.completion_tokens
                if self.cache is not None:  # the bytes sent and received, as they were
                    self.cache.cache_store(key, data.decode(), _text(response.body))
                return answer
            message = _server_message(response.body)
            if response.status == 429 or response.status >= 500:
                kind, cause, last_exc = "status", f"HTTP {response.status}: {message}", None
                retry_after = _retry_after(response.headers.get("retry-after"))
                continue
            self._counts["failures"] += 1
            hint = _hint_4xx(self, response.status)
            raise LLMRejectedError(f"{_who(self.role)} at {self.base_url} rejected the request "
                                   f"(HTTP {response.status}): {message}. {hint}")
        self._counts["failures"] += 1
        raise self._final_error(kind, cause, attempts) from last_exc

    def _final_error(self, kind: str, cause: str, attempts: int) -> LLMError:
        where = f"{_who(self.role)} at {self.base_url}"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if kind == "connect":
            return LLMError(f"cannot reach the {where} ({tries}): {cause}. Is the server "
                            f"running? Check {self.role}.base_url.")
        if kind == "timeout":
            return LLMError(f"{where} did not answer ({tries}, {cause} each). The server may be "
                            f"overloaded or the model too slow: raise {self.role}.timeout or "
                            f"lower {self.role}.max_concurrency.")
        if kind == "garbage":
            return LLMResponseError(f"{where} answered with no usable completion ({tries}): "
                                    f"{cause}. Check that {self.role}.base_url is the server's "
                                    f"OpenAI-compatible URL (usually ending in /v1).")
        return LLMError(f"{where} kept failing ({tries}): {cause}. Check the server's log.")


def _who(role: str) -> str:
    return "LLM server" if role == "llm" else f"{role} LLM server"


def _free(completion: Completion) -> Completion:
    """The completion as served without cost (cache hit or shared in-flight answer)."""
    return Completion(completion.text, 0, 0, completion.finish_reason, cached=True)


def _text(body: bytes) -> str:
    """A JSON body as text (JSON is UTF-8 unless it says otherwise by its first bytes)."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return json.dumps(json.loads(body), ensure_ascii=False)


def _parse(data: Any) -> Completion:
    if not isinstance(data, Mapping):
        raise _Garbage("the JSON is not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        error = data.get("error")
        if error:
            raise _Garbage(f"error in the body: {_error_text(error)}")
        raise _Garbage("no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise _Garbage("the choice has no message")
    finish = choice.get("finish_reason") or "stop"
    content = message.get("content")
    if content is None and finish == "length":
        content = ""  # e.g. a reasoning model that spent max_tokens thinking
    if not isinstance(content, str):
        raise _Garbage("the message has no content")
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    prompt_tokens = usage.get("prompt_tokens")
    completion_tokens = usage.get("completion_tokens")
    return Completion(
        content,
        prompt_tokens if isinstance(prompt_tokens, int) else 0,
        completion_tokens if isinstance(completion_tokens, int) else 0,
        str(finish),
    )


def _parse_embedding(data: Any) -> Embedding:
    if not isinstance(data, Mapping):
        raise _Garbage("the JSON is not an object")
    items = data.get("data")
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        error = data.get("error")
        if error:
            raise _Garbage(f"error in the body: {_error_text(error)}")
        raise _Garbage("no embedding data")
    vector = items[0].get("embedding")
    if not isinstance(vector, list) or not vector \
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
        raise _Garbage("the embedding is not a list of numbers")
    usage = data.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, Mapping) else None
    return Embedding(tuple(float(x) for x in vector), tokens if isinstance(tokens, int) else 0)


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        error = error.get("message") or error
    return str(error)[:300]


def _server_message(body: bytes) -> str:
    """The server's error message from an error response body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, Mapping):
        for field in ("error", "detail", "message"):
            if data.get(field):
                return _error_text(data[field])
    text = body.decode("utf-8", "replace").strip()
    return text[:300] if text else "(empty body)"


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date; the normal backoff applies


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    text = str(exc) or exc.__class__.__name__
    return f"{text} ({exc.__class__.__name__})" if str(exc) else text


def _hint_4xx(client: LLMClient, status: int) -> str:
    if status in (401, 403):
        return "Check the API key (the environment variable the server config names)."
    if status == 404:
        return (f"Check {client.role}.base_url (usually ending in /v1) and "
                f"{client.role}.model ({client.model!r}).")
    return f"Check {client.role}.model and the request parameters."
