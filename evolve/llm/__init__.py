"""LLM clients and managed inference servers.

One async OpenAI-compatible client (:class:`LLMClient`) talks to every backend;
the framework can also start the server itself: llama.cpp in-process on CPU
(:class:`LlamaCppServer`, the embedded default), vLLM on a GPU
(:class:`VLLMServer`), or nothing for a server run elsewhere
(:class:`ExternalServer`).
"""

from evolve.llm._cache_key import canonical_json, request_key
from evolve.llm._client import ClientStats, LLMClient
from evolve.llm._external import ExternalServer
from evolve.llm._llamacpp import LlamaCppServer
from evolve.llm._model_files import check_gguf, find_embedded_model
from evolve.llm._response_cache import ResponseCache
from evolve.llm._server_base import ManagedServer, SubprocessServer
from evolve.llm._servers import SERVER_KINDS, open_server
from evolve.llm._types import Completion, Embedding
from evolve.llm._vllm import VLLMServer, vllm_command

__all__ = [
    "SERVER_KINDS",
    "ClientStats",
    "Completion",
    "Embedding",
    "ExternalServer",
    "LLMClient",
    "LlamaCppServer",
    "ManagedServer",
    "ResponseCache",
    "SubprocessServer",
    "VLLMServer",
    "canonical_json",
    "check_gguf",
    "find_embedded_model",
    "open_server",
    "request_key",
    "vllm_command",
]
