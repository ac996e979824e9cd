"""Host side of HumanEval's hidden tests: the test-sandbox job, and reading its verdicts.

One job tests many programs: it holds the trusted harness
(``guest/humaneval_harness.py``) and ``hidden.json`` (the programs, the hidden
tests and the job's secret, 256 fresh random bits), and never an LLM socket.
The harness deletes ``hidden.json`` before any program runs, kills what each
program leaves behind, and at the end prints one line: the job's tag, an
HMAC-SHA256 keyed with the secret, and the payload (the tag, the task ids in
order, the verdicts).

The stdout channel itself is not private: with bwrap run by an ordinary user, a
program's leftover process can open the sandbox's stdout pipe through
``/proc/1/fd/1``, read what goes by and write anything there. So the host
believes only a line whose MAC verifies with this job's secret and whose
payload names this job's tag and task ids, and ignores every other line. No
program ever learns the secret (it is never printed, see ``_humaneval.py`` for
the whole trust argument), so nothing a program prints, writes, copies or
replays from another job can pass for a verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from sandboxes import (
    EndReason,
    Executor,
    Job,
    Limits,
    Result,
    UntrustedDataError,
    untrusted_json,
)

from ._program_eval import ProgramResult, _excerpt

HARNESS = "humaneval_harness.py"
HIDDEN = "hidden.json"
#: seconds of the test job's wall time on top of the problems' own budgets
_JOB_MARGIN_SECONDS = 20.0
#: per problem, for starting the program's process and loading the test
_START_SECONDS = 2.0
#: what each HMAC of the job's secret is for (as in the guest harness): the tag, the MAC
_TAG_LABEL, _MAC_LABEL = b"cladeforge humaneval job tag", b"cladeforge humaneval verdict\n"
_TAG_HEX, _MAC_HEX = 32, 64
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
    return resources.files("fitness.code").joinpath("guest", HARNESS).read_bytes()


def harness_job(cases: Sequence[tuple[HiddenTest, str]], settings: HarnessSettings,
                secret: str) -> Job:
    """The job that runs each ``(hidden test, program text)`` of ``cases`` in the harness.

    ``secret`` keys the verdict's MAC: fresh and random for every job (as
    ``run_hidden_tests`` makes it), shown to no one, and given again to
    ``read_verdicts``.
    """
    hidden = {"secret": secret, "check_seconds": settings.check_seconds,
              "max_answer_bytes": settings.max_answer_bytes,
              "problems": [{"task_id": h.task_id, "prompt": h.prompt,
                            "entry_point": h.entry_point, "test": h.test, "program": program}
                           for h, program in cases]}
    wall = len(cases) * (settings.check_seconds + _START_SECONDS) + _JOB_MARGIN_SECONDS
    limits = Limits(memory_mb=settings.memory_mb, cpus=1.0, pids=settings.pids,
                    wall_seconds=wall, workdir_mb=64)
    return Job((settings.python, "-I", HARNESS, HIDDEN), limits=limits,
               files={HARNESS: harness_source(), HIDDEN: json.dumps(hidden).encode()})


def read_verdicts(result: Result, secret: str,
                  task_ids: Sequence[str]) -> dict[str, ProgramResult]:
    """One ``ProgramResult`` per task id from the job's authenticated line (score 0 where
    there is none, or where it has no valid verdict for the task).

    ``result`` is a finished job: every sandbox backend kills the job's whole
    process tree before ``run`` returns (and the harness kills the programs'
    processes before it writes), so no program's process is alive while this
    reads. The line counts whatever way the job ended: only the harness can have
    made it, and it writes it last.
    """
    seconds = result.wall_seconds / max(1, len(task_ids))
    verdicts = authenticated_verdicts(result.stdout, secret, task_ids)
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


def authenticated_verdicts(stdout: bytes, secret: str,
                           task_ids: Sequence[str]) -> Mapping[str, object] | None:
    """The verdicts of the first line in ``stdout`` made by this job's harness (keyed with
    ``secret``, testing ``task_ids`` in this order), or None if there is no such line.

    A candidate line runs from an occurrence of the job's tag to the end of its
    line: the MAC, then the payload. The MAC is compared in constant time before
    anything parses the payload; a line that fails any check is skipped.
    """
    key = secret.encode("utf-8")
    tag = hmac.new(key, _TAG_LABEL, hashlib.sha256).hexdigest()[:_TAG_HEX].encode("ascii")
    start = 0
    while (at := stdout.find(tag, start)) >= 0:
        end = stdout.find(b"\n", at)
        end = len(stdout) if end < 0 else end
        start = end + 1  # each line once: many tags on one line cost one MAC, not many
        mac_at = at + len(tag)
        mac, payload = stdout[mac_at:mac_at + _MAC_HEX], stdout[mac_at + _MAC_HEX:end]
        expected = hmac.new(key, _MAC_LABEL + payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected.encode("ascii")):
            continue
        try:
            data = untrusted_json(payload)
        except UntrustedDataError:
            continue
        if isinstance(data, dict) and data.get("job") == tag.decode("ascii") \
                and data.get("task_ids") == list(task_ids) \
                and isinstance(data.get("verdicts"), dict):
            return data["verdicts"]
    return None


async def run_hidden_tests(executor: Executor, cases: Sequence[tuple[HiddenTest, str]],
                           settings: HarnessSettings) -> dict[str, ProgramResult]:
    """Test each ``(hidden test, program)`` in one fresh test-sandbox job; a result per task."""
    if not cases:
        return {}
    secret = secrets.token_hex(32)  # this job's MAC key, never printed
    result = await executor.run(harness_job(cases, settings, secret))
    return read_verdicts(result, secret, [h.task_id for h, _ in cases])
