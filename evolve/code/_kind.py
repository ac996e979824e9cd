"""The code genome kind: programs and agents kept in the run's git repository, scored in
sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from archive import Candidate, SQLiteStorage
from fitness.code import (
    CODE_BENCHMARK_KINDS,
    CodeBenchmark,
    code_benchmark_options,
    make_code_benchmark,
)

from .._clients import Clients
from .._config import RunConfig
from .._errors import CladeforgeError
from .._genome_kind import GenomeKind
from ._factory import check_sandbox, open_code_species, repair_repo
from ._genome import CODE_KIND
from ._repo import REPO_DIR, RunRepo
from ._show import show_candidate
from ._species import CodeSpecies
from .operators import CODE_OPERATORS, code_operator_options


class CodeKind(GenomeKind):
    name = CODE_KIND
    noun = "program"
    summary = ("a program or an agent: a commit in the run's git repository, run and scored "
               "in a sandbox")
    default_selector = "dgm"  # a code run starts from one seed: DGM's open-ended archive
    default_operator_weights: Mapping[str, float] = MappingProxyType({
        "diff_edit": 3.0,
        "full_rewrite": 1.0,
        "hyper_diff": 1.0,
        "merge": 0.5,
        "self_modify": 0.0,  # agents only: the parent agent edits its own code in a sandbox
    })
    operators = CODE_OPERATORS
    operator_options = staticmethod(code_operator_options)
    benchmark_kinds = CODE_BENCHMARK_KINDS
    benchmark_options = staticmethod(code_benchmark_options)
    make_benchmark = staticmethod(make_code_benchmark)

    def roles(self, benchmark: CodeBenchmark) -> frozenset[str]:
        # the task model is called only by agents (through the gateway); a program is run
        return frozenset({"mutator", "task"} if benchmark.needs_llm else {"mutator"})

    def check(self, config: RunConfig) -> None:
        check_sandbox(config.sandbox)

    @asynccontextmanager
    async def open_species(self, config: RunConfig, storage: SQLiteStorage, clients: Clients,
                           benchmark: CodeBenchmark, directory: Path) -> AsyncIterator[CodeSpecies]:
        with RunRepo.open(directory / REPO_DIR, create=True) as repo:
            repair_repo(storage, repo)
            async with open_code_species(config, storage, clients, benchmark, repo) as species:
                yield species

    def copy_run_files(self, source: Path, target: Path) -> None:
        if (source / REPO_DIR).is_dir():
            with RunRepo.for_run(source) as repo:
                repo.copy_to(target / REPO_DIR).close()

    def show(self, candidate: Candidate, parents: Mapping[int, Candidate],
             directory: Path) -> dict[str, Any]:
        return show_candidate(candidate, parents, directory)

    def checkout(self, candidate: Candidate, directory: Path, target: Path) -> list[str]:
        commit = candidate.genome.get("commit")
        if not commit:
            raise CladeforgeError(
                f"candidate #{candidate.id} has no commit (it was not materialised)")
        with RunRepo.for_run(directory) as repo:
            return repo.checkout(commit, target)


CODE = CodeKind()
