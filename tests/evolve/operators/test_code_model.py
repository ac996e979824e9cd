"""Each code operator once against the real embedded model (SmolLM2 via llama.cpp).

The 135M model rarely writes a patch that applies, so these tests only check
that a real answer ends as either a valid child or an invalid child with a
reason and its exchanges recorded — never as a crash. The operators' logic is
tested with scripted answers in the other ``test_code_*`` modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np
import pytest

from evolve.code.operators import (
    CodeMutation,
    CodeMutationContext,
    CodeOperator,
    DiffEdit,
    FullRewrite,
    HyperDiff,
    Merge,
    default_code_hyper_mutation_prompts,
    default_code_mutation_prompts,
)
from evolve.llm import LLMClient
from evolve.operators import InvalidChild

from .code_support import code_candidate
from .op_support import index_of

pytestmark = [pytest.mark.model, pytest.mark.slow]

BASE = ("def solve(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
        "    return total\n")
TREES: Mapping[int, Mapping[str, str]] = {
    1: {"solve.py": BASE.replace("total = 0", "total = 1")},
    2: {"solve.py": BASE.replace("total = 0", "total = 2")},  # conflicts with 1
}


def outcome(operator: CodeOperator, base_url: str) -> CodeMutation | InvalidChild:
    async def go() -> CodeMutation | InvalidChild:
        async with LLMClient(base_url, "smollm2", role="mutator", timeout=300) as llm:
            ctx = CodeMutationContext(
                parent=index_of(code_candidate(1, fitness=0.5), code_candidate(
                    2, fitness=0.6)).get(1),
                parent_files=TREES[1], evolve_paths=("solve.py",),
                view=index_of(code_candidate(1, fitness=0.5), code_candidate(2, fitness=0.6)),
                rng=np.random.default_rng(1), llm=llm,
                problem="Return the sum of the whole numbers below n.",
                feedback="score 0.0: solve(3) returned 4, expected 3",
                mutation_prompts=default_code_mutation_prompts(),
                hyper_mutation_prompts=default_code_hyper_mutation_prompts(),
                files_of=lambda cid: TREES[cid], merge_base_files=lambda a, b: {"solve.py": BASE},
                max_tokens=200, temperature=0.7)
            try:
                return await operator.mutate(ctx)
            except InvalidChild as exc:
                return exc

    return asyncio.run(go())


@pytest.mark.parametrize("operator", [DiffEdit(context_chars=0), FullRewrite(context_chars=0),
                                      Merge(), HyperDiff(context_chars=0)],
                         ids=lambda op: op.name)
def test_a_real_answer_gives_a_valid_or_a_documented_invalid_child(
        operator: CodeOperator, llama_base_url: str) -> None:
    result = outcome(operator, llama_base_url)
    calls = 2 if isinstance(operator, HyperDiff) else 1  # and a repair turn, if needed
    repairs = getattr(operator, "repairs", 0)
    if isinstance(result, InvalidChild):
        assert result.reason.strip()
        assert 1 <= len(result.exchanges) <= calls + repairs
        assert result.exchanges[-1]["rejected"] == result.reason
    else:
        assert isinstance(result, CodeMutation)
        assert set(result.files) == {"solve.py"} and result.files != TREES[1]
        compile(result.files["solve.py"], "solve.py", "exec")
        assert calls <= len(result.exchanges) <= calls + repairs and result.message
    assert sum("repair" in ex for ex in result.exchanges) <= repairs
    for exchange in result.exchanges:
        assert exchange["messages"][-1]["role"] == "user"
        assert isinstance(exchange["response"], str)
        assert exchange["prompt_tokens"] > 0
