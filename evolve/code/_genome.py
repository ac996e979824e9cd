"""Code genome: a candidate program or agent is a commit in the run's own git repository.

The archive stores ``{"commit": <sha>, "mutation_prompt": <text>}``; the files
live in git (``RunRepo``), and the commit's parents are the candidate's
parents (a merge has two). The mutation prompt is the instruction the code
operators give the mutator LLM, and evolves under hypermutation as for prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CODE_KIND = "code"


@dataclass(frozen=True)
class CodeGenome:
    commit: str
    mutation_prompt: str

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "mutation_prompt": self.mutation_prompt}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeGenome:
        return cls(str(data["commit"]), str(data.get("mutation_prompt", "")))
