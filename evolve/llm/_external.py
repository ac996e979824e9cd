"""A server someone else runs: a hosted API, Ollama, a vLLM started by hand."""

from __future__ import annotations

import os

from evolve._errors import ServerStartError
from evolve.llm._server_base import ManagedServer

__all__ = ["ExternalServer"]


class ExternalServer(ManagedServer):
    """An OpenAI-compatible server at ``base_url``; nothing to start.

    The API key, if the server needs one, is read at ``start()`` from the
    environment variable named by ``api_key_env``. Only that name is ever part of
    a config or a repr; the key itself stays in this object's memory (and the
    client's) and is dropped at ``stop()``. ``grammar_field``: the request field
    in which the server takes a GBNF grammar (``grammar`` for a llama.cpp server,
    ``guided_grammar`` for vLLM); None, the default, sends none.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = None,
                 grammar_field: str | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self.grammar_field = grammar_field
        self._model = model
        self.api_key_env = api_key_env
        self._api_key: str | None = None

    def __repr__(self) -> str:
        return (f"ExternalServer(base_url={self._base_url!r}, model={self._model!r}, "
                f"api_key_env={self.api_key_env!r})")

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def model(self) -> str:
        return self._model

    @property
    def api_key(self) -> str | None:
        if self.api_key_env and self._api_key is None:
            raise RuntimeError("ExternalServer.start() reads the API key; call it first")
        return self._api_key

    async def start(self) -> None:
        if not self.api_key_env:
            return
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ServerStartError(
                f"the environment variable {self.api_key_env} (named by api_key_env) is not set "
                f"or empty: export {self.api_key_env}=<API key for {self._base_url}>")
        self._api_key = key

    async def stop(self) -> None:
        self._api_key = None
