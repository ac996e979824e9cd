"""Host side of HumanEval's hidden tests: the test-sandbox job, and reading its verdicts.

One job tests many programs: it holds the trusted harness
(``guest/humaneval_harness.py``) and ``hidden.json`` (the programs, the hidden
tests and a fresh nonce), and never an LLM socket. The harness deletes
``hidden.json`` before any program runs and prints one line, the nonce then
the verdicts as JSON. The host believes only that line: a program cannot know
the nonce, so nothing it prints, writes or leaves behind can pass for a
verdict (see ``_humaneval.py`` for the whole trust argument).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from sandboxes import EndReason, Executor, Job, Limits, Result

from ._program_eval import ProgramResult, _excerpt

HARNESS = "humaneval_harness.py"
HIDDEN = "hidden.json"
#: seconds of the test job's wall time on top of the problems' own budgets
_JOB_MARGIN_SECONDS = 20.0
#: per problem, for starting the program's process and loading the test
_START_SECONDS = 2.0
_VERDICT_REASONS = {"pass": EndReason.OK, "fail": EndReason.OK, "timeout": EndReason.TIMEOUT,
                    "exit": EndReason.EXIT, "error": EndReason.ERROR}


@dataclass(frozen=True)
class HiddenTest:
    """What the host keeps of a problem and never shows the agent: the test, and the
    prompt and entry point the test needs (the prompt's helpers, e.g. ``poly``)."""

    task_id: str
    prompt: str
    entry_point: str
    test: str


@dataclass(frozen=True)
class HarnessSettings:
    """How the test job runs.

    ``check_seconds``: a problem's whole budget (the program's import and every
    call of the test), after which it fails with ``timeout``.
    ``memory_mb``/``pids``: limits of the test job (the harness and one
    program's process at a time). ``max_answer_bytes``: the largest return
    value (as ``repr``) a program may send back. ``python``: the interpreter.
    """

    check_seconds: float = 15.0
    memory_mb: int = 512
    pids: int = 64
    max_answer_bytes: int = 1 << 20
    python: str = "python3"


def harness_source() -> bytes:
    return resources.files("fitness").joinpath("guest", HARNESS).read_bytes()


def harness_job(cases: Sequence[tuple[HiddenTest, str]], settings: HarnessSettings,
             nonce: str) -> Job:
    """The job that runs each ``(hidden test, program text)`` of ``cases`` in the harness."""
    hidden = {"nonce": nonce, "check_seconds": settings.check_seconds,
              "max_answer_bytes": settings.max_answer_bytes,
              "problems": [{"task_id": h.task_id, "prompt": h.prompt,
                            "entry_point": h.entry_point, "test": h.test, "program": program}
                           for h, program in cases]}
    wall = len(cases) * (settings.check_seconds + _START_SECONDS) + _JOB_MARGIN_SECONDS
    limits = Limits(memory_mb=settings.memory_mb, cpus=1.0, pids=settings.pids,
                    wall_seconds=wall, workdir_mb=64)
    return Job((settings.python, "-I", HARNESS, HIDDEN), limits=limits,
               files={HARNESS: harness_source(), HIDDEN: json.dumps(hidden).encode()})


def read_verdicts(result: Result, nonce: str,
                  task_ids: Sequence[str]) -> dict[str, ProgramResult]:
    """One ``ProgramResult`` per task id from the harness's nonce line (0 where there is none).

    The line counts whatever way the job ended: only the harness can have written
    it, and it writes it last.
    """
    seconds = result.wall_seconds / max(1, len(task_ids))
    verdicts = _nonce_line(result.stdout, nonce)
    results = {}
    for task_id in task_ids:
        verdict = verdicts.get(task_id) if verdicts is not None else None
        if not (isinstance(verdict, Mapping) and verdict.get("verdict") in _VERDICT_REASONS):
            reason = result.reason if result.reason is not EndReason.OK else EndReason.ERROR
            detail = "the test harness gave no verdict: " + (_excerpt(result) or "no output")
            results[task_id] = ProgramResult(task_id, 0.0, reason, seconds, detail[:600])
            continue
        kind = verdict["verdict"]
        results[task_id] = ProgramResult(task_id, 1.0 if kind == "pass" else 0.0,
                                         _VERDICT_REASONS[kind], seconds,
                                         str(verdict.get("detail", ""))[:300])
    return results


def _nonce_line(stdout: bytes, nonce: str) -> Mapping[str, object] | None:
    text = stdout.decode("utf-8", "replace")
    at = text.find(nonce)
    if at < 0:
        return None
    line = text[at + len(nonce):].split("\n", 1)[0]
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, Mapping) else None


async def run_hidden_tests(executor: Executor, cases: Sequence[tuple[HiddenTest, str]],
                           settings: HarnessSettings) -> dict[str, ProgramResult]:
    """Test each ``(hidden test, program)`` in one fresh test-sandbox job; a result per task."""
    if not cases:
        return {}
    nonce = secrets.token_hex(16)  # a secret for this job only, not a source of randomness
    result = await executor.run(harness_job(cases, settings, nonce))
    return read_verdicts(result, nonce, [h.task_id for h, _ in cases])
