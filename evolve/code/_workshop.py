"""Where an agent modifies itself: a sandbox with its own code, its evaluation, and the LLM.

The self-modification operator (DGM's diagnose-then-implement loop) hands the
parent agent's files to ``Workshop.self_modify``: they run in a fresh sandbox
as ``python3 self_improve.py`` (the agent's own entry point, which evolves
with it) beside ``EVALUATION.md`` (the parent's scores and failures) and
``PROBLEM.md``, reaching the mutator model only through a metered gateway
session; the files it leaves are the child. ``run_tests`` runs the agent's own
tests, if it has any, in another fresh sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from sandboxes import EndReason, Executor, GatewayUsage, Job, Limits, LLMGateway, guest_client_files

SELF_IMPROVE = "self_improve.py"
_TAIL = 1500


def default_self_improve() -> str:
    """The seed agents' ``self_improve.py`` (evolve/code/data/self_improve.py)."""
    return resources.files("evolve.code").joinpath("data", SELF_IMPROVE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class SelfModification:
    """What a self-improvement run left: the files, how it ended, its log, its LLM usage."""

    files: Mapping[str, str]
    reason: EndReason
    log: str
    usage: GatewayUsage


class Workshop:
    """Runs an agent's self-improvement and tests in sandboxes through ``executor``.

    ``gateway`` serves the mutator model; each self-improvement run gets a
    session with ``token_budget`` tokens, whose requests without a seed are
    seeded from ``seed`` (drawn from the child's generator: reproducible, and
    different for each child of a parent). ``limits`` bound each run.
    """

    def __init__(self, executor: Executor, gateway: LLMGateway, *, token_budget: int | None,
                 limits: Limits | None = None) -> None:
        self.executor = executor
        self.gateway = gateway
        self.token_budget = token_budget
        self.limits = limits or Limits(wall_seconds=300, memory_mb=512)

    async def self_modify(self, files: Mapping[str, str], *, evaluation: str, problem: str,
                          key: str, seed: int | None = None) -> SelfModification:
        inputs = {path: text.encode() for path, text in files.items()}
        inputs.update(guest_client_files())
        # the evaluation quotes the candidate's output: never let a stray surrogate raise here
        inputs["EVALUATION.md"] = evaluation.encode("utf-8", "replace")
        inputs["PROBLEM.md"] = problem.encode("utf-8", "replace")
        async with self.gateway.session(key, token_budget=self.token_budget,
                                        seed=seed) as session:
            result = await self.executor.run(Job(
                ("python3", SELF_IMPROVE), files=inputs, collect=tuple(files),
                limits=self.limits, llm_socket=session.socket_path))
        after = dict(files)
        for path, data in result.files.items():
            try:
                after[path] = data.decode("utf-8")
            except UnicodeDecodeError:
                pass  # an unreadable file keeps the parent's version
        log = _tail(result.stdout) + ("\n" + _tail(result.stderr) if result.stderr else "")
        if result.detail:
            log = f"{result.detail}\n{log}"
        return SelfModification(after, result.reason, log.strip(), session.usage)

    async def run_tests(self, files: Mapping[str, str]) -> str | None:
        """The failure of the agent's own tests (``test_*.py``, ``tests/``), or None."""
        if not any(_is_test(path) for path in files):
            return None
        result = await self.executor.run(Job(
            ("python3", "-m", "unittest", "discover", "-q", "-p", "test_*.py"),
            files={path: text.encode() for path, text in files.items()}, limits=self.limits))
        if result.reason is EndReason.OK:
            return None
        return f"the agent's own tests fail ({result.reason}): {_tail(result.stderr, 500)}"


def _is_test(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.startswith("tests/") or (name.startswith("test_") and name.endswith(".py"))


def _tail(data: bytes, limit: int = _TAIL) -> str:
    return data[-limit:].decode("utf-8", "replace").strip()
