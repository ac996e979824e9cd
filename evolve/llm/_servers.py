"""Choosing a managed server by kind (``llamacpp``, ``vllm``, ``external``)."""

from __future__ import annotations

import inspect
from typing import Any

from evolve._errors import ConfigError
from evolve.llm._external import ExternalServer
from evolve.llm._llamacpp import LlamaCppServer
from evolve.llm._server_base import ManagedServer
from evolve.llm._vllm import VLLMServer

__all__ = ["SERVER_KINDS", "open_server"]

SERVER_KINDS: dict[str, type[ManagedServer]] = {
    "llamacpp": LlamaCppServer,
    "vllm": VLLMServer,
    "external": ExternalServer,
}


def open_server(kind: str, **options: Any) -> ManagedServer:
    """A not-yet-started server of ``kind``, built with ``options``.

    Raises :class:`ConfigError` for an unknown kind or options the kind does not
    take (naming the ones it does).
    """
    try:
        cls = SERVER_KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown LLM server kind {kind!r}; choose one of "
                          f"{', '.join(sorted(SERVER_KINDS))}") from None
    signature = inspect.signature(cls)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters)
        raise ConfigError(f"LLM server kind {kind!r}: {exc} (it takes: {accepted})") from None
    return cls(**options)
