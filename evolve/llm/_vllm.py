"""vLLM's OpenAI-compatible server, launched as a subprocess (GPU machines)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence

from evolve._errors import ServerStartError
from evolve.llm._server_base import SubprocessServer

__all__ = ["VLLMServer", "vllm_command"]


def vllm_command(model: str, *, host: str = "127.0.0.1", port: int | str = 8000,
                 gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, seed: int | None = None,
                 extra_args: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The command line that starts vLLM's OpenAI API server.

    ``python -m vllm.entrypoints.openai.api_server`` takes the same flags as
    ``vllm serve``; ``extra_args`` are appended verbatim (e.g.
    ``["--dtype", "bfloat16", "--enable-prefix-caching"]``).
    """
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--host", host,
        "--port", str(port),
        "--gpu-memory-utilization", str(gpu_memory_utilization),
        "--tensor-parallel-size", str(tensor_parallel_size),
    ]
    if max_model_len is not None:
        command += ["--max-model-len", str(max_model_len)]
    if seed is not None:
        command += ["--seed", str(seed)]
    command += list(extra_args)
    return command


class VLLMServer(SubprocessServer):
    """vLLM serving ``model`` (a Hugging Face id or a local directory) on a GPU.

    The first start may download the model, hence the long ``startup_timeout``.
    ``command`` replaces the vLLM command line (``{host}`` and ``{port}`` are
    filled in) — e.g. to run another OpenAI-compatible server through the same
    launcher. The server's output goes to ``log_path`` (a temporary file when
    None).
    """

    grammar_field = "guided_grammar"  # guided decoding (xgrammar or outlines backend)

    def __init__(self, model: str, *, port: int | None = None, host: str = "127.0.0.1",
                 gpu_memory_utilization: float = 0.9, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, seed: int | None = None,
                 extra_args: Sequence[str] = (), python: str = sys.executable,
                 startup_timeout: float = 900.0, stop_timeout: float = 30.0,
                 log_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None,
                 command: Sequence[str] | None = None) -> None:
        if command is None:
            command = vllm_command(
                model, host="{host}", port="{port}",
                gpu_memory_utilization=gpu_memory_utilization,
                tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                seed=seed, extra_args=extra_args, python=python)
            self._checks_vllm = python == sys.executable
        else:
            self._checks_vllm = False
        super().__init__(command, model=model, host=host, port=port,
                         startup_timeout=startup_timeout, stop_timeout=stop_timeout,
                         log_path=log_path, env=env, name="vLLM server")

    def _check_can_start(self) -> None:
        if self._checks_vllm and importlib.util.find_spec("vllm") is None:
            raise ServerStartError(
                "the vllm server kind needs the vllm package (and an NVIDIA GPU), which is not "
                "installed here: pip install 'cladeforge[vllm]', or use the llamacpp server "
                "kind on a CPU-only machine")
