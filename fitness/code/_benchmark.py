"""Code benchmarks: a seed program or agent, examples in fixed splits, trusted evaluation.

A ``CodeBenchmark`` gives the evolution its starting point (``seed_files``,
the files of the seed candidate, and which of them operators may change) and
evaluates a candidate's files on examples by running them in sandboxes
through an ``Executor`` and scoring the outputs with trusted code outside the
candidate's reach (see ``_program_eval.py``).

Agent benchmarks (``needs_llm``) run a program that calls the LLM itself: the
evaluation gets ``llm_socket``, the host path of an LLM gateway session for
this candidate, to mount into the sandboxes where the agent runs (never into
the ones that run hidden tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandboxes import Executor

from .._benchmark import Example
from ._program_eval import ProgramEvaluation


@dataclass(frozen=True)
class EvaluationEnv:
    """What a code evaluation may use: where jobs run, and the candidate's LLM socket."""

    executor: Executor
    llm_socket: str | None = None


class CodeBenchmark(ABC):
    """A code task: seed files, fixed splits, and a trusted evaluation of candidate files."""

    #: short name used in configs and reports
    name: str
    #: the problem statement the mutator LLM sees (what the code must do, how it is scored)
    description: str
    #: True when candidates are agents that call the LLM (through the gateway socket)
    needs_llm: bool = False

    @abstractmethod
    def seed_files(self) -> Mapping[str, str]:
        """The seed candidate's files (relative path -> text)."""

    def evolve_paths(self) -> tuple[str, ...]:
        """The files operators may change (default: every seed file)."""
        return tuple(sorted(self.seed_files()))

    @abstractmethod
    def split(self, name: str) -> Sequence[Example]:
        """The examples of ``name`` (one of ``SPLITS``), always in the same order."""

    @abstractmethod
    async def evaluate(self, files: Mapping[str, bytes], examples: Sequence[Example],
                       env: EvaluationEnv) -> ProgramEvaluation:
        """Scores in [0, 1] of the candidate ``files`` on ``examples``, one result each."""
