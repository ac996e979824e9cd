"""Open the mutator and task models of a run: start managed servers, make clients.

Only the roles a run uses are opened (``GenomeKind.roles``: a code run whose
benchmark calls no LLM never uses the task model), and two ``llamacpp`` (or
``vllm``) entries with the same server settings share one server, so the
default config runs a single llama.cpp instance for both roles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from ._config import LLMConfig, LLMsConfig
from ._errors import ConfigError
from .llm import (
    ExternalServer,
    LlamaCppServer,
    LLMClient,
    ResponseCache,
    VLLMServer,
    check_gguf,
    find_embedded_model,
)

#: the model roles: the mutator writes children, the task model is what a prompt (or an
#: agent) is scored with
ROLES = ("mutator", "task")
#: role defaults for options left unset in the config
ROLE_DEFAULTS = {
    "mutator": {"temperature": 0.8, "max_tokens": 160},
    "task": {"temperature": 0.0, "max_tokens": 192},
}
#: the default request timeout (``request_timeout``): seconds to read the prompt, and
#: seconds per token of max_tokens (2 tokens a second: a small model on a busy CPU)
TIMEOUT_BASE = 60.0
TIMEOUT_PER_TOKEN = 0.5


class RoleNotOpened(RuntimeError):
    """A part of the run asked for the client of a role the run does not use (a bug of the
    genome kind's ``roles``: no server is started for an undeclared role)."""


class Clients:
    """The open model clients of one execution, by role.

    ``mutator`` and ``task`` raise ``RoleNotOpened`` for a role that was not opened;
    ``opened(role)`` is the client or None, for accounting.
    """

    def __init__(self, clients: Mapping[str, LLMClient]) -> None:
        self._clients = dict(clients)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(self._clients)

    def opened(self, role: str) -> LLMClient | None:
        return self._clients.get(role)

    def get(self, role: str) -> LLMClient:
        client = self._clients.get(role)
        if client is None:
            opened = ", ".join(sorted(self._clients)) or "none"
            raise RoleNotOpened(
                f"the {role} model was asked for, but this run does not use it, so no client "
                f"or server was opened for it (roles opened: {opened}); a genome kind that "
                f"needs it must name it in its roles()")
        return client

    @property
    def mutator(self) -> LLMClient:
        return self.get("mutator")

    @property
    def task(self) -> LLMClient:
        return self.get("task")


def server_key(config: LLMConfig) -> tuple[Any, ...]:
    """What makes two entries need different servers (sampling options do not)."""
    if config.backend == "llamacpp":
        return ("llamacpp", config.model_path, config.model, config.parallel,
                config.context_size, config.threads)
    if config.backend == "vllm":
        return ("vllm", config.model, config.port, config.gpu_memory_utilization,
                config.tensor_parallel_size, config.max_model_len, config.extra_args)
    return ("external", config.base_url, config.model, config.api_key_env,
            config.grammar_field)


def make_server(config: LLMConfig, embeddings: bool = False) -> Any:
    if config.backend == "llamacpp":
        return LlamaCppServer(config.model_path, n_parallel=config.parallel,
                              n_ctx=config.context_size, threads=config.threads,
                              alias=config.model, embeddings=embeddings)
    if config.backend == "vllm":
        return VLLMServer(config.model or "", port=config.port,
                          gpu_memory_utilization=config.gpu_memory_utilization,
                          tensor_parallel_size=config.tensor_parallel_size,
                          max_model_len=config.max_model_len, extra_args=config.extra_args,
                          startup_timeout=config.startup_timeout)
    return ExternalServer(config.base_url or "", config.model or "default",
                          api_key_env=config.api_key_env, grammar_field=config.grammar_field)


def preflight(config: LLMsConfig, roles: Collection[str] = ROLES) -> None:
    """Fail before a run is created if a local model file or backend of one of ``roles``
    (those the run uses) is missing."""
    for role in _checked(roles):
        cfg: LLMConfig = getattr(config, role)
        if cfg.backend != "llamacpp":
            continue
        try:
            import xllamacpp  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"llm.{role}.backend: 'llamacpp' needs the xllamacpp package; install it with "
                "pip install 'cladeforge[local]'") from None
        if cfg.model_path:
            check_gguf(cfg.model_path)
        else:
            find_embedded_model()


def sampling(config: LLMConfig, role: str) -> tuple[float, int]:
    """(temperature, max_tokens) for a role, with the role's defaults filled in."""
    defaults = ROLE_DEFAULTS[role]
    temperature = defaults["temperature"] if config.temperature is None else config.temperature
    max_tokens = defaults["max_tokens"] if config.max_tokens is None else config.max_tokens
    return float(temperature), int(max_tokens)


def context_window(config: LLMConfig) -> int | None:
    """The tokens one request and its reply share on the role's server: llama.cpp's
    per-slot ``context_size``, vLLM's ``max_model_len``; None when unknown (an external
    server, or vLLM at the model's own length)."""
    if config.backend == "llamacpp":
        return config.context_size
    if config.backend == "vllm":
        return config.max_model_len
    return None


def request_timeout(config: LLMConfig, role: str) -> float:
    """Seconds a request of ``role`` may take: ``config.timeout``, or when it is not set
    ``TIMEOUT_BASE`` plus ``TIMEOUT_PER_TOKEN`` per token of the role's max_tokens."""
    if config.timeout is not None:
        return float(config.timeout)
    _, max_tokens = sampling(config, role)
    return TIMEOUT_BASE + TIMEOUT_PER_TOKEN * max_tokens


@asynccontextmanager
async def open_clients(config: LLMsConfig, cache: ResponseCache,
                       roles: Collection[str] = ROLES,
                       embeddings: Collection[str] = ()) -> AsyncIterator[Clients]:
    """Start the servers ``roles`` (those the run uses) need and yield their clients; the
    other roles get neither a server nor a client. A managed llama.cpp server of a role
    in ``embeddings`` also serves ``/v1/embeddings`` (to every role that shares it)."""
    used = _checked(roles)
    embedding_keys = {server_key(getattr(config, role)) for role in used if role in embeddings}
    async with AsyncExitStack() as stack:
        servers: dict[tuple[Any, ...], Any] = {}
        clients = {}
        for role in used:
            cfg: LLMConfig = getattr(config, role)
            key = server_key(cfg)
            if key not in servers:
                servers[key] = await stack.enter_async_context(
                    make_server(cfg, key in embedding_keys))
            server = servers[key]
            temperature, max_tokens = sampling(cfg, role)
            client = server.client(  # the server's address, key and grammar field
                max_concurrency=cfg.max_concurrency, timeout=request_timeout(cfg, role),
                max_retries=cfg.max_retries, cache=cache, role=role,
                default_params={"temperature": temperature, "max_tokens": max_tokens})
            stack.push_async_callback(client.aclose)
            clients[role] = client
        yield Clients(clients)


def _checked(roles: Collection[str]) -> list[str]:
    """``roles`` in ``ROLES`` order; an unknown role is a bug of the caller."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown model role(s) {sorted(unknown)}; the roles are {ROLES}")
    return [role for role in ROLES if role in roles]
