"""Ask the run's LLM from inside a Cladeforge sandbox (standard library only, Python 3.8+).

The sandbox has no network; the LLM is reached through the gateway's unix socket,
whose path is in the environment variable ``CLADEFORGE_LLM_SOCKET`` (default
``/run/cladeforge/llm.sock``).

    import cladeforge_llm as llm

    text = llm.chat([{"role": "user", "content": "2 + 2 = ?"}], max_tokens=16)
    text = llm.chat("2 + 2 = ?")                   # one user message
    text = llm.complete("The capital of France is", max_tokens=8)
    names = llm.models()

    with llm.Client() as client:                   # one connection for many requests
        for question in questions:
            try:
                answers.append(client.chat(question, max_tokens=64, temperature=0.0))
            except llm.TokenBudgetExceeded:
                break                              # this candidate's tokens are spent

Parameters the gateway honours: ``max_tokens``, ``temperature``, ``top_p``,
``stop``, ``seed`` (and ``n=1``); it drops the others, chooses the model itself
and refuses ``stream=True``. Every failure raises :class:`LLMGatewayError`;
a spent token budget raises its subclass :class:`TokenBudgetExceeded`.

Run ``python cladeforge_llm.py "a question"`` to ask once from a shell.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
from typing import Any

__all__ = ["DEFAULT_SOCKET", "SOCKET_ENV", "Client", "LLMGatewayError", "TokenBudgetExceeded",
           "chat", "chat_response", "complete", "complete_response", "models"]

SOCKET_ENV = "CLADEFORGE_LLM_SOCKET"
DEFAULT_SOCKET = "/run/cladeforge/llm.sock"


class LLMGatewayError(Exception):
    """The gateway could not be reached or answered with an error.

    ``status`` is the HTTP status (None when there was no answer); ``type`` and
    ``code`` come from the gateway's JSON error.
    """

    def __init__(self, message: str, status: int | None = None,
                 error_type: str | None = None, code: str | None = None) -> None:
        Exception.__init__(self, message)
        self.message = message
        self.status = status
        self.type = error_type
        self.code = code


class TokenBudgetExceeded(LLMGatewayError):
    """The request does not fit in what is left of this candidate's token budget.

    Its message says whether a shorter prompt may still fit; once the budget is
    spent, no further request will be answered.
    """


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Client:
    """A connection to the gateway, kept open between requests.

    ``socket_path`` None reads ``CLADEFORGE_LLM_SOCKET``; ``timeout`` is in
    seconds per request (a small model on a busy machine can be slow).
    """

    def __init__(self, socket_path: str | None = None, timeout: float = 600.0) -> None:
        self.socket_path = socket_path or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
        self.timeout = timeout
        self._conn: _UnixHTTPConnection | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str,
                payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer; raise on an error status."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            fresh = self._conn is None
            if fresh:
                self._conn = _UnixHTTPConnection(self.socket_path, self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                response = self._conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                self.close()
                if fresh or attempt:
                    raise LLMGatewayError("the LLM gateway closed the connection without "
                                          f"answering: {exc}") from exc
                continue  # a kept-alive connection the gateway had closed: once more, anew
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise LLMGatewayError(
                    f"cannot reach the LLM gateway at {self.socket_path} "
                    f"({type(exc).__name__}: {exc}); is this sandbox given an LLM socket "
                    f"({SOCKET_ENV})?") from exc
            if response.will_close:
                self.close()
            return _decode(response.status, raw)
        raise AssertionError("unreachable")

    def chat_response(self, messages: str | list[dict[str, Any]],
                      **params: Any) -> dict[str, Any]:
        """The whole chat completion JSON. ``messages`` may be a string (one user message)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        payload = dict(params)
        payload["messages"] = messages
        return self.request("POST", "/v1/chat/completions", payload)

    def chat(self, messages: str | list[dict[str, Any]], **params: Any) -> str:
        """The assistant's text of one chat completion."""
        response = self.chat_response(messages, **params)
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMGatewayError(
                f"the LLM gateway's answer has no message: {response!r}"[:300]) from exc
        return content or ""

    def complete_response(self, prompt: str, **params: Any) -> dict[str, Any]:
        """The whole text completion JSON."""
        payload = dict(params)
        payload["prompt"] = prompt
        return self.request("POST", "/v1/completions", payload)

    def complete(self, prompt: str, **params: Any) -> str:
        """The text of one completion of ``prompt``."""
        response = self.complete_response(prompt, **params)
        try:
            text = response["choices"][0]["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMGatewayError(
                f"the LLM gateway's answer has no text: {response!r}"[:300]) from exc
        return text or ""

    def models(self) -> list[str]:
        """The model names the gateway serves."""
        response = self.request("GET", "/v1/models")
        try:
            return [item["id"] for item in response["data"]]
        except (KeyError, TypeError) as exc:
            raise LLMGatewayError("the LLM gateway's model list is malformed") from exc


def _decode(status: int, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:
        data = None
    if 200 <= status < 300 and isinstance(data, dict):
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "no message")
        error_type, code = error.get("type"), error.get("code")
    else:
        message = raw[:300].decode("utf-8", "replace") or "no message"
        error_type = code = None
    if status == 429 and error_type == "token_budget_exceeded":
        raise TokenBudgetExceeded(message, status, error_type, code)
    raise LLMGatewayError(f"LLM gateway error (HTTP {status}): {message}",
                          status, error_type, code)


def chat(messages: str | list[dict[str, Any]], **params: Any) -> str:
    """The assistant's text of one chat completion (see :meth:`Client.chat`)."""
    with Client() as client:
        return client.chat(messages, **params)


def chat_response(messages: str | list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    """The whole chat completion JSON (see :meth:`Client.chat_response`)."""
    with Client() as client:
        return client.chat_response(messages, **params)


def complete(prompt: str, **params: Any) -> str:
    """The text of one completion (see :meth:`Client.complete`)."""
    with Client() as client:
        return client.complete(prompt, **params)


def complete_response(prompt: str, **params: Any) -> dict[str, Any]:
    """The whole text completion JSON (see :meth:`Client.complete_response`)."""
    with Client() as client:
        return client.complete_response(prompt, **params)


def models() -> list[str]:
    """The model names the gateway serves."""
    with Client() as client:
        return client.models()


def _main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: python cladeforge_llm.py QUESTION | --models\n")
        return 2
    try:
        if argv[0] == "--models":
            print("\n".join(models()))
        else:
            print(chat(argv[0]))
    except LLMGatewayError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
