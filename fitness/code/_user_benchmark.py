"""User benchmarks: a directory with a ``benchmark.yaml``, seed files, data and an evaluator.

Layout (the names of the seed dir, the data files and the evaluator are set in
``benchmark.yaml``; paths there are relative to the directory)::

    my_benchmark/
      benchmark.yaml
      evaluate.py          # the user's trusted scorer
      seed/main.py         # the seed candidate's files
      data/train.jsonl     # one example per line: {"id": ..., "input": ..., "answer": ...}
      data/validation.jsonl
      data/test.jsonl      # optional

``benchmark.yaml`` keys (unknown keys are rejected):

``name`` (required)
    short name used in reports.
``description`` (required)
    the problem statement the mutator LLM sees: what the program must do,
    what it reads and writes, how it is scored.
``seed`` (required)
    the directory of the seed candidate's files (UTF-8 text, read recursively).
``evolve``
    the files operators may change (default: every seed file).
``command`` (required)
    how a candidate runs: a list (``[python3, main.py]``) or a string split
    like a shell would.
``outputs`` (required)
    the files the candidate writes, collected for the evaluator.
``evaluator``
    the scorer script, a Python file (default ``evaluate.py``).
``limits``, ``evaluator_limits``
    sandbox limits of the candidate's run and of the evaluator's run (keys of
    ``sandboxes.Limits``: ``wall_seconds``, ``memory_mb``, ``cpus``, ``pids``,
    ``output_bytes``, ``workdir_mb``; defaults: 30 s, 512 MB, 1 CPU).
``llm``
    true when the candidate is an agent that calls the LLM through the gateway
    (its runs get the gateway socket; the evaluator's never do). Default false.
``splits`` (required)
    JSONL files of the ``train`` and ``validation`` splits, and optionally of
    ``test`` (empty when absent). Each line is an object with ``id`` (unique
    across splits), ``input`` (any JSON; public) and ``answer`` (any JSON;
    hidden from the candidate).

Evaluating a candidate on an example takes two fresh sandbox jobs:

1. the candidate's files plus ``input.json`` (the example's input; it
   replaces any file of that name the candidate has) run ``command``; the
   declared ``outputs`` are collected;
2. if that run ended with exit code 0, a second job gets only the evaluator as
   ``evaluate.py``, ``input.json``, ``answer.json`` (the example's answer) and
   the collected outputs under ``outputs/`` (``outputs/<name>``; missing ones
   are absent), never the candidate's program. It runs ``python3
   evaluate.py``, which prints ``{"score": <float in [0, 1]>, "detail":
   "..."}`` as its last line of stdout.

The host parses and checks that line. A candidate run that fails (crash,
timeout, limit) scores 0 with the reason. An evaluator that fails or prints
no valid score line gives 0 too, with the evaluator's problem in the detail
(and a warning in the log), so one bad output never stops a run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sandboxes import (
    EndReason,
    Job,
    Limits,
    Result,
    SandboxError,
    UntrustedDataError,
    check_relpath,
    untrusted_json,
)

from .._benchmark import SPLITS, Example
from .._errors import BenchmarkError
from .._procedural import check_split_name
from ._benchmark import CodeBenchmark, EvaluationEnv
from ._program_eval import ProgramEvaluation, ProgramResult, _excerpt

logger = logging.getLogger(__name__)

CONFIG = "benchmark.yaml"
INPUT = "input.json"
ANSWER = "answer.json"
EVALUATOR = "evaluate.py"
OUTPUTS_DIR = "outputs"

_REQUIRED = ("name", "description", "seed", "command", "outputs", "splits")
_OPTIONAL = ("evolve", "evaluator", "limits", "evaluator_limits", "llm")
_LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(Limits))
_DEFAULT_LIMITS = Limits(wall_seconds=30.0, memory_mb=512, cpus=1.0)
_SKIPPED = ("__pycache__", ".git")


class DirectoryBenchmark(CodeBenchmark):
    """A user benchmark read from the directory ``path`` (format: see the module doc).

    The directory is read and checked when the benchmark is built: a problem
    raises ``BenchmarkError`` naming the file and the key.
    """

    OPTION_DOCS = MappingProxyType(
        {"path": "directory holding benchmark.yaml, the seed files, the data and the evaluator"}
    )

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        config = _read_config(self.path / CONFIG)
        where = str(self.path / CONFIG)
        self.name = _string(config, "name", where)
        self.description = _string(config, "description", where)
        self.needs_llm = _flag(config, "llm", where)
        self.command = _command(config, where)
        self.outputs = _paths(config, "outputs", where)
        self._seed = _read_seed(self.path, _string(config, "seed", where), where)
        if INPUT in self._seed:
            raise BenchmarkError(f"{where}: the seed may not contain {INPUT} (the benchmark "
                                 "writes each example's input there)")
        evolve = _paths(config, "evolve", where) if "evolve" in config else tuple(self._seed)
        missing = sorted(set(evolve) - set(self._seed))
        if missing:
            raise BenchmarkError(f"{where}: key 'evolve' names file(s) not in the seed: "
                                 f"{', '.join(missing)}")
        self._evolve = tuple(sorted(evolve))
        evaluator = self.path / _string(config, "evaluator", where, default=EVALUATOR)
        try:
            self.evaluator = evaluator.read_bytes()
        except OSError as error:
            raise BenchmarkError(f"{where}: key 'evaluator': cannot read {evaluator} "
                                 f"({error.strerror or error})") from error
        self.limits = _limits(config, "limits", where)
        self.evaluator_limits = _limits(config, "evaluator_limits", where)
        self._splits = _read_splits(self.path, config, where)

    def seed_files(self) -> Mapping[str, str]:
        return dict(self._seed)

    def evolve_paths(self) -> tuple[str, ...]:
        return self._evolve

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        return self._splits[name]

    async def evaluate(self, files: Mapping[str, bytes], examples: Sequence[Example],
                       env: EvaluationEnv) -> ProgramEvaluation:
        results = await asyncio.gather(*(self._one(files, e, env) for e in examples))
        return ProgramEvaluation(tuple(results))

    def candidate_job(self, files: Mapping[str, bytes], example: Example,
                      llm_socket: str | None = None) -> Job:
        """The job running the candidate on ``example``: its files and the public input only."""
        return Job(self.command, files={**files, INPUT: example.question.encode()},
                   limits=self.limits, collect=self.outputs,
                   llm_socket=llm_socket if self.needs_llm else None)

    def evaluator_job(self, example: Example, outputs: Mapping[str, bytes]) -> Job:
        """The job scoring ``outputs``: the evaluator, input, answer and outputs, no program."""
        files = {EVALUATOR: self.evaluator, INPUT: example.question.encode(),
                 ANSWER: example.answer.encode()}
        files.update({f"{OUTPUTS_DIR}/{name}": data for name, data in outputs.items()
                      if name in self.outputs})
        return Job(("python3", EVALUATOR), files=files, limits=self.evaluator_limits)

    async def _one(self, files: Mapping[str, bytes], example: Example,
                   env: EvaluationEnv) -> ProgramResult:
        run = await env.executor.run(self.candidate_job(files, example, env.llm_socket))
        if run.reason is not EndReason.OK:
            return ProgramResult(example.id, 0.0, run.reason, run.wall_seconds, _excerpt(run))
        verdict = await env.executor.run(self.evaluator_job(example, run.files))
        score, detail = _verdict(verdict)
        if score is None:
            logger.warning("%s: the evaluator gave no score for example %r: %s",
                           self.name, example.id, detail)
            score, detail = 0.0, f"evaluator failed: {detail}"
        return ProgramResult(example.id, score, run.reason, run.wall_seconds, detail)


def _verdict(result: Result) -> tuple[float | None, str]:
    """``(score, detail)`` from the evaluator's last stdout line, or ``(None, why not)``."""
    if result.reason is not EndReason.OK:
        return None, f"{EVALUATOR} ended with {result.reason}: {_excerpt(result)}"
    lines = result.stdout.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1] if lines else ""
    try:  # the evaluator may echo what the candidate wrote: read it as untrusted
        verdict = untrusted_json(last)
    except UntrustedDataError as error:
        return None, (f"the last line of {EVALUATOR}'s output is not JSON: {last[:200]!r} "
                      f"({str(error)[:100]})")
    if not isinstance(verdict, dict) or "score" not in verdict:
        return None, f'{EVALUATOR} must print {{"score": ..., "detail": ...}}, got {last[:200]!r}'
    score, detail = verdict["score"], verdict.get("detail", "")
    # the range check first: it holds for ints of any size (math.isfinite overflows on them)
    if (isinstance(score, bool) or not isinstance(score, int | float)
            or not 0.0 <= score <= 1.0 or not math.isfinite(score)):
        return None, f"{EVALUATOR} gave the score {_short(score)}; scores must lie in [0, 1]"
    if not isinstance(detail, str):
        return None, f"{EVALUATOR} gave a detail that is not a string: {_short(detail)}"
    return float(score), detail[:500]


def _short(value: Any) -> str:
    """``repr(value)`` cut to 200 characters (an int of 4,000 digits has no shorter repr)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 600:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------ loading


def _read_config(file: Path) -> dict[str, Any]:
    if not file.parent.is_dir():
        raise BenchmarkError(f"user benchmark directory not found: {file.parent}")
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BenchmarkError(f"{file} not found: a user benchmark directory needs one "
                             "(see docs/user_benchmarks.md)") from error
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkError(f"cannot read {file}: {error}") from error
    except yaml.YAMLError as error:
        raise BenchmarkError(f"{file} is not valid YAML: {error}") from error
    if not isinstance(config, dict):
        raise BenchmarkError(f"{file}: expected a mapping of keys, got {type(config).__name__}")
    unknown = sorted(str(key) for key in set(config) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise BenchmarkError(f"{file}: unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise BenchmarkError(f"{file}: missing required key(s) {', '.join(missing)}")
    return config


def _string(config: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = config.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkError(f"{where}: key {key!r} must be a non-empty string, got {value!r}")
    return value


def _flag(config: Mapping[str, Any], key: str, where: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise BenchmarkError(f"{where}: key {key!r} must be true or false, got {value!r}")
    return value


def _command(config: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = config["command"]
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as error:
            raise BenchmarkError(f"{where}: key 'command': {error}") from error
    if (not isinstance(value, list) or not value
            or not all(isinstance(part, str) and part for part in value)):
        raise BenchmarkError(f"{where}: key 'command' must be a string or a non-empty list of "
                             f"strings, got {config['command']!r}")
    return tuple(value)


def _paths(config: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = config[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
        raise BenchmarkError(f"{where}: key {key!r} must be a file name or a non-empty list of "
                             f"file names, got {value!r}")
    try:
        return tuple(check_relpath(p) for p in value)
    except SandboxError as error:
        raise BenchmarkError(f"{where}: key {key!r}: {error}") from error


def _limits(config: Mapping[str, Any], key: str, where: str) -> Limits:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise BenchmarkError(f"{where}: key {key!r} must be a mapping of limits, got {value!r}")
    unknown = sorted(str(k) for k in set(value) - set(_LIMIT_KEYS))
    if unknown:
        raise BenchmarkError(f"{where}: key {key!r}: unknown limit(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(_LIMIT_KEYS)}")
    for name, limit in value.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise BenchmarkError(f"{where}: key {key}.{name} must be a number, got {limit!r}")
        if name not in ("cpus", "wall_seconds") and not isinstance(limit, int):
            raise BenchmarkError(f"{where}: key {key}.{name} must be an integer, got {limit!r}")
    try:
        return dataclasses.replace(_DEFAULT_LIMITS, **value)
    except SandboxError as error:
        raise BenchmarkError(f"{where}: key {key!r}: {error}") from error


def _read_seed(root: Path, seed: str, where: str) -> dict[str, str]:
    folder = root / seed
    if not folder.is_dir():
        raise BenchmarkError(f"{where}: key 'seed': no directory {folder}")
    files = {}
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder)
        if not file.is_file() or any(part in _SKIPPED for part in rel.parts):
            continue
        try:
            files[rel.as_posix()] = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BenchmarkError(f"{where}: key 'seed': cannot read {file} as UTF-8 text "
                                 f"({error})") from error
    if not files:
        raise BenchmarkError(f"{where}: key 'seed': the directory {folder} holds no files")
    return files


def _read_splits(root: Path, config: Mapping[str, Any],
                 where: str) -> dict[str, tuple[Example, ...]]:
    splits = config["splits"]
    if not isinstance(splits, dict):
        raise BenchmarkError(f"{where}: key 'splits' must map split names to JSONL files, "
                             f"got {splits!r}")
    unknown = sorted(str(name) for name in set(splits) - set(SPLITS))
    if unknown:
        raise BenchmarkError(f"{where}: key 'splits': unknown split(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(SPLITS)}")
    result: dict[str, tuple[Example, ...]] = {}
    seen: dict[str, str] = {}
    for name in SPLITS:
        if name not in splits:
            if name != "test":
                raise BenchmarkError(f"{where}: key 'splits' needs a {name!r} file")
            result[name] = ()
            continue
        rel = splits[name]
        if not isinstance(rel, str) or not rel:
            raise BenchmarkError(f"{where}: key splits.{name} must be a file name, got {rel!r}")
        examples = _read_examples(root / rel, f"{where}: key splits.{name}")
        for example in examples:
            if example.id in seen:
                raise BenchmarkError(f"{root / rel}: example id {example.id!r} occurs more "
                                     f"than once (also in {seen[example.id]})")
            seen[example.id] = str(root / rel)
        result[name] = examples
    return result


def _read_examples(file: Path, key: str) -> tuple[Example, ...]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BenchmarkError(f"{key}: cannot read {file} ({error})") from error
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            examples.append(_example(line, f"{file}:{number}"))
    if not examples:
        raise BenchmarkError(f"{key}: {file} has no examples")
    return tuple(examples)


def _example(line: str, where: str) -> Example:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise BenchmarkError(f"{where}: not valid JSON ({error})") from error
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in ("id", "input", "answer") if key not in record]
    if missing:
        raise BenchmarkError(f"{where}: missing key(s) {', '.join(missing)} (each example needs "
                             "id, input and answer)")
    extra = sorted(set(record) - {"id", "input", "answer"})
    if extra:
        raise BenchmarkError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: id, input, "
                             "answer")
    if not isinstance(record["id"], str | int) or isinstance(record["id"], bool):
        raise BenchmarkError(f"{where}: key 'id' must be a string or an integer, "
                             f"got {record['id']!r}")
    return Example(str(record["id"]), json.dumps(record["input"]), json.dumps(record["answer"]))
