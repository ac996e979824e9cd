"""Build the live parts of a code run: the repository, sandboxes, gateways and the species."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from archive import SQLiteStorage, Status
from fitness.code import CodeBenchmark
from sandboxes import (
    Executor,
    LLMGateway,
    SandboxError,
    SandboxSpec,
    check_backend,
    open_executor,
)

from .._clients import Clients, context_window, sampling
from .._config import RunConfig, SandboxConfig
from .._errors import ConfigError
from .._species import Lexicon
from ..operators import default_thinking_styles
from ._gateway_bridge import client_forward, client_token_counter
from ._genome import CODE_KIND
from ._repo import RunRepo
from ._species import CodeSpecies
from ._workshop import SELF_IMPROVE, Workshop, default_self_improve
from .operators import default_code_hyper_mutation_prompts, default_code_mutation_prompts


def load_code_lexicon() -> Lexicon:
    """The code operators' seed lists (evolve/code/data/*.txt, the thinking styles shared)."""
    return Lexicon(thinking_styles=default_thinking_styles(),
                   mutation_prompts=default_code_mutation_prompts(),
                   hyper_mutation_prompts=default_code_hyper_mutation_prompts())


#: what a user of the CLI runs when the sandbox image or root filesystem is missing
BUILD_HINT = "run 'evolve sandbox build'"


def check_sandbox(config: SandboxConfig) -> None:
    """A clear error now, not at the first evaluation, when the backend cannot run here."""
    if config.executor == "ray":
        return  # the backend must work on the Ray nodes, not necessarily here
    status = check_backend(config.backend, build_hint=BUILD_HINT)
    if not status.available:
        raise ConfigError(f"sandbox.backend {config.backend!r} cannot run here: {status.detail}"
                          " (see 'evolve sandbox check')")


def repair_repo(storage: SQLiteStorage, repo: RunRepo) -> None:
    """Make the git refs agree with the archive after a crash; a pending candidate whose
    commit was lost is recorded as failed."""
    commits = {c.id: str(c.genome.get("commit")) for c in storage.index.candidates()
               if c.kind == CODE_KIND}
    report = repo.reconcile(commits)
    for cid in report.missing:
        if storage.index.get(cid).status is Status.PENDING:
            storage.finish_candidate(cid, Status.FAILED, reason=(
                f"its commit {commits[cid][:12]} is missing from the run's git repository"))


def sandbox_spec(config: SandboxConfig) -> SandboxSpec:
    return SandboxSpec(config.backend, warm=config.warm, executor=config.executor,
                       workers=config.workers, ray_address=config.ray_address,
                       build_hint=BUILD_HINT)


def build_executor(config: SandboxConfig) -> Executor:
    """The sandbox executor of a code run (nothing is started until the first job)."""
    try:
        return open_executor(sandbox_spec(config))
    except SandboxError as exc:
        raise ConfigError(f"sandbox: {exc}") from None


@asynccontextmanager
async def open_code_species(config: RunConfig, storage: SQLiteStorage, clients: Clients,
                            benchmark: CodeBenchmark, repo: RunRepo) -> AsyncIterator[CodeSpecies]:
    """The code species of one execution, with its executor and (for agents) the gateways
    of the task model and of self-modification; all closed on exit."""
    _, mutator_tokens = sampling(config.llm.mutator, "mutator")
    budget = config.sandbox.token_budget
    async with AsyncExitStack() as stack:
        executor = build_executor(config.sandbox)
        stack.callback(executor.close)
        task_gateway = workshop = None
        extra_seed_files = {}
        if benchmark.needs_llm:
            task_gateway, mutator_gateway = [
                await stack.enter_async_context(LLMGateway(
                    client_forward(client), [client.model],
                    count_tokens=client_token_counter(client)))
                for client in (clients.task, clients.mutator)]
            workshop = Workshop(executor, mutator_gateway, token_budget=budget)
            extra_seed_files = {SELF_IMPROVE: default_self_improve()}
        yield CodeSpecies(
            benchmark, repo, executor, clients.mutator, storage.index, load_code_lexicon(),
            gateway=task_gateway, token_budget=budget, mutator_max_tokens=mutator_tokens,
            mutator_context=context_window(config.llm.mutator), workshop=workshop,
            extra_seed_files=extra_seed_files)
