"""Self-modification (Darwin Gödel Machine): the parent agent improves its own code.

The parent agent runs inside a sandbox on a checkout of its own code, with its
evaluation (scores, failures) beside it, and reaches the LLM only through the
gateway (``Workshop.self_modify``); it diagnoses what to improve and edits its
own files. The files it leaves are the child, if they changed, compile, and
pass the agent's own tests (when it has any). The run is recorded as one
exchange with its log and its LLM usage. No answer grammar applies (the option
``constrained`` of the other code operators): the operator asks the mutator for no
answer itself; the agent's own calls through the gateway are its to shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from archive import Failure
from sandboxes import EndReason

from ..._schema import doc
from ...operators import InvalidChild
from ._base import CodeMutation, CodeMutationContext, CodeOperator
from ._patch import syntax_error


@dataclass(frozen=True, kw_only=True)
class SelfModify(CodeOperator):
    """The parent agent edits its own code in a sandbox (needs an agent benchmark)."""

    name: ClassVar[str] = "self_modify"

    entry_point: str = doc("The agent's self-improvement script, run as python3 <file>.",
                           "self_improve.py")

    async def mutate(self, ctx: CodeMutationContext) -> CodeMutation:
        workshop = ctx.workshop
        if workshop is None:
            raise InvalidChild("self_modify needs an agent benchmark (one whose candidates "
                               "call the LLM) and a sandbox")
        if self.entry_point not in ctx.parent_files:
            raise InvalidChild(f"the agent has no {self.entry_point} to improve itself with")
        seed = int(ctx.rng.integers(1 << 31))
        run = await workshop.self_modify(
            ctx.parent_files, evaluation=ctx.feedback, problem=ctx.problem,
            key=f"self-modify:{ctx.parent.id}:{seed}", seed=seed)
        exchange: dict[str, Any] = {
            "kind": "self_modify", "end": str(run.reason), "log": run.log,
            "calls": run.usage.requests, "refused": run.usage.refused, "cached": False,
            "prompt_tokens": run.usage.prompt_tokens,
            "completion_tokens": run.usage.completion_tokens}
        exchanges = (exchange,)
        if run.reason is not EndReason.OK:
            raise InvalidChild(f"the self-improvement run ended with {run.reason}: "
                               f"{run.log[-300:]}", exchanges,
                               Failure.TIMEOUT if run.reason is EndReason.TIMEOUT
                               else Failure.RUNTIME_ERROR)
        changed = sorted(p for p, text in run.files.items() if ctx.parent_files.get(p) != text)
        if not changed:
            raise InvalidChild("the agent left its code unchanged", exchanges, Failure.DUPLICATE)
        for path in changed:
            error = syntax_error(path, run.files[path])  # also a NUL byte, nesting too deep
            if error:
                raise InvalidChild(error, exchanges, Failure.SYNTAX_ERROR)
        failure = await workshop.run_tests(run.files)
        if failure is not None:
            raise InvalidChild(failure, exchanges, Failure.RUNTIME_ERROR)
        parent_prompt = str(ctx.parent.genome.get("mutation_prompt", ""))
        return CodeMutation(files=dict(run.files), mutation_prompt=parent_prompt,
                            exchanges=exchanges,
                            message=f"self-modification of {', '.join(changed)}")
