"""The constrained request reaches llama.cpp: with the embedded model, ``diff_edit`` on the
circle-packing seed program writes blocks that parse and apply inside the EVOLVE-BLOCK at
every seed, where the same requests unconstrained do not; a prompt operator's answer is one
instruction; a merge's conflict resolution is one fenced file in its grammar."""

from __future__ import annotations

import asyncio

import pytest

from evolve.code.operators import DiffEdit, FullRewrite, Merge
from evolve.code.operators._grammars import diff_grammar, resolution_grammar, rewrite_grammar
from evolve.llm import LlamaCppServer
from evolve.operators import InvalidChild
from evolve.operators._base import instruction_grammar
from fitness.code import CirclePackingBenchmark, make_code_benchmark
from tests.evolve.operators.code_support import code_context

SEEDS = range(4)


def outcome(server: LlamaCppServer, operator: DiffEdit | FullRewrite, seed: int
            ) -> tuple[str, str | None]:
    """(the answer, why its child is invalid or None) for one seeded request."""
    bench = CirclePackingBenchmark()
    files, paths = dict(bench.seed_files()), bench.evolve_paths()

    async def go() -> tuple[str, str | None]:
        async with server.client(max_concurrency=1) as client:
            ctx = code_context({1: files}, client, evolve_paths=paths, seed=seed,  # type: ignore[arg-type]
                               max_tokens=512, temperature=0.8)
            try:
                mutation = await operator.mutate(ctx)
            except InvalidChild as exc:
                return exc.exchanges[-1]["response"], exc.reason
            return mutation.exchanges[-1]["response"], None

    return asyncio.run(go())


#: the reasons of an answer that does not follow the format or does not apply
FORMAT_FAILURES = ("block", "SEARCH", "not found", "EVOLVE-BLOCK", "several places")


def format_failure(reason: str | None) -> bool:
    """An answer that breaks the format, not one cut off at max_tokens mid-block (the
    grammar cannot make a reply shorter)."""
    return (reason is not None and any(word in reason for word in FORMAT_FAILURES)
            and "cut off" not in reason)


@pytest.mark.model
@pytest.mark.slow
def test_constrained_diff_edit_answers_apply_where_unconstrained_ones_do_not(
        llamacpp_server: LlamaCppServer) -> None:
    constrained = [outcome(llamacpp_server, DiffEdit(), s) for s in SEEDS]
    unconstrained = [outcome(llamacpp_server, DiffEdit(constrained=False), s) for s in SEEDS]
    assert not any(format_failure(reason) for _, reason in constrained), constrained
    assert sum(reason is None for _, reason in constrained) >= 2, constrained  # valid children
    assert all(answer.startswith("packing.py\n<<<<<<< SEARCH\n") for answer, _ in constrained)
    assert any(format_failure(reason) for _, reason in unconstrained), unconstrained


@pytest.mark.model
@pytest.mark.slow
def test_a_constrained_rewrite_keeps_the_frozen_text(llamacpp_server: LlamaCppServer) -> None:
    for seed in SEEDS[:2]:
        answer, reason = outcome(llamacpp_server, FullRewrite(), seed)
        assert answer.startswith("```python\n")
        assert reason is None or "outside its EVOLVE-BLOCK" not in reason, reason


@pytest.mark.model
@pytest.mark.slow
def test_llama_cpp_takes_every_grammar_built_for_the_shipped_seed_programs(
        llamacpp_server: LlamaCppServer) -> None:
    """llama.cpp refuses some grammars our matcher accepts (e.g. a bounded repetition
    inside another): each grammar of the shipped programs must start a completion."""
    grammars = {"instruction": instruction_grammar(400)}
    for kind in ("circle_packing", "bin_packing", "humaneval_agent"):
        bench = make_code_benchmark(kind)
        files, paths = dict(bench.seed_files()), list(bench.evolve_paths())
        grammars[f"{kind} diff"] = diff_grammar(files, paths, max_blocks=16)
        for path in paths:
            grammars[f"{kind} rewrite {path}"] = rewrite_grammar(path, files[path], "python")
            grammars[f"{kind} resolution {path}"] = resolution_grammar(path, files[path],
                                                                       "python")

    async def go() -> dict[str, str]:
        async with llamacpp_server.client(max_retries=0) as client:
            return {name: (await client.chat([{"role": "user", "content": "Go."}],
                                             max_tokens=2, grammar=g.gbnf())).text
                    for name, g in grammars.items()}

    answers = asyncio.run(go())
    assert set(answers) == set(grammars)


@pytest.mark.model
@pytest.mark.slow
def test_llama_cpp_takes_the_merge_grammar_of_a_real_conflict_and_answers_in_it(
        llamacpp_server: LlamaCppServer) -> None:
    """Parent and donor change the same line of the circle-packing seed's EVOLVE-BLOCK:
    git leaves a conflict, the mutator is asked with the resolution grammar of the parent's
    file, llama.cpp takes it and its answer (when not cut at max_tokens) matches it."""
    bench = CirclePackingBenchmark()
    seed_files = dict(bench.seed_files())
    line = "    r = 0.225 / max(cols, rows)\n"
    assert line in seed_files["packing.py"]
    ours = {"packing.py": seed_files["packing.py"].replace(line, line.replace("0.225", "0.24"))}
    theirs = {"packing.py": seed_files["packing.py"].replace(line, line.replace("0.225", "0.23"))}
    grammar = resolution_grammar("packing.py", ours["packing.py"], "python")

    async def go(seed: int) -> dict:
        async with llamacpp_server.client(max_concurrency=1) as client:
            ctx = code_context({1: ours, 2: theirs}, client,  # type: ignore[arg-type]
                               evolve_paths=bench.evolve_paths(), seed=seed, max_tokens=768,
                               temperature=0.8, bases={(1, 2): seed_files})
            try:
                mutation = await Merge().mutate(ctx)
            except InvalidChild as exc:
                return exc.exchanges[-1]
            return mutation.exchanges[-1]

    exchanges = [asyncio.run(go(seed)) for seed in SEEDS]
    for exchange in exchanges:
        assert "<<<<<<< parent" in exchange["messages"][-1]["content"]
        assert exchange["params"]["grammar"] == grammar.gbnf()
        assert "grammar_refused" not in exchange and exchange["response"] is not None
        assert exchange["response"].startswith("```python\n" + ours["packing.py"][:40])
    whole = [e["response"] for e in exchanges if e["finish_reason"] != "length"]
    assert whole, exchanges
    assert all(grammar.matches(answer) for answer in whole), whole
