"""How many of a model's children are valid, per code operator, with and without constraints.

    python benchmarks/valid_children.py [--benchmark circle_packing] [--n 8]
        [--operators diff_edit,full_rewrite] [--model-path FILE.gguf] [--base-url URL --model M]
        [--max-tokens 768] [--temperature 0.8] [--sandbox bwrap] [--seed 0]

From the benchmark's seed program as the parent, each operator makes --n children with
the mutator model (the embedded SmolLM2-135M by default; any GGUF through --model-path,
any OpenAI-compatible server through --base-url, with --grammar-field if it takes a
grammar), once with its answer constrained by a grammar and once without, at the same
seeds, in one run. Each child is then evaluated on the training split in a sandbox. Per
operator and mode it prints:

- apply: the answer had the required shape and applied to the parent (a child exists);
- compile: it applied and every changed Python file compiles;
- valid: the child ran and was scored on every example without a failure;
- changed: valid, and its score differs from the parent's;
- better: valid, and its score is higher than the parent's;
- cut: the reply was cut at max_tokens;
- tokens and seconds per child (the mutation; the evaluation's seconds are apart).

Why children die is listed by reason below the table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import ArchiveIndex, Candidate, SplitScore, Status, Usage  # noqa: E402
from evolve.code import CodeGenome  # noqa: E402
from evolve.code.operators import (  # noqa: E402
    CODE_OPERATORS,
    CodeMutationContext,
    default_code_mutation_prompts,
)
from evolve.llm import ExternalServer, LlamaCppServer, LLMClient  # noqa: E402
from evolve.operators import InvalidChild  # noqa: E402
from fitness.code import CodeBenchmark, EvaluationEnv, make_code_benchmark  # noqa: E402
from sandboxes import SandboxSpec, open_executor  # noqa: E402

#: words of the reasons of an answer without the required shape, or that did not apply
FORMAT = ("block", "SEARCH", "fenced", "code block", "EVOLVE-BLOCK", "read-only")


@dataclass
class Tally:
    """What one operator's children in one mode came to."""

    made: int = 0
    applied: int = 0
    compiled: int = 0
    valid: int = 0
    changed: int = 0
    better: int = 0
    cut: int = 0
    tokens: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    def row(self, name: str) -> str:
        n = max(1, self.made)
        rates = [self.applied, self.compiled, self.valid, self.changed, self.better, self.cut]
        return (f"{name:<28}" + "".join(f"{r / n:>9.0%}" for r in rates)
                + f"{self.tokens / n:>9.0f}{self.seconds / n:>9.1f}")


def parent_candidate(files: Mapping[str, str]) -> Candidate:
    return Candidate(
        id=1, slot=1, kind="code", genome=CodeGenome("0" * 40, "").to_dict(), parent_ids=(),
        operator="seed", generation=0, status=Status.EVALUATED, reason=None, retired_by=None,
        scores={"train": SplitScore("train", 0.0)}, mutation=None, usage=Usage(), timings={},
        descriptors={}, created_at=0.0, updated_at=0.0)


def context(bench: CodeBenchmark, files: Mapping[str, str], feedback: str, llm: LLMClient,
            seed: int, args: argparse.Namespace) -> CodeMutationContext:
    parent = parent_candidate(files)
    view = ArchiveIndex()
    view.publish(parent)
    return CodeMutationContext(
        parent=parent, parent_files=dict(files), evolve_paths=bench.evolve_paths(), view=view,
        rng=np.random.default_rng(seed), llm=llm, problem=bench.description,
        feedback=feedback, mutation_prompts=default_code_mutation_prompts(),
        hyper_mutation_prompts=(), files_of=lambda _cid: dict(files),
        merge_base_files=lambda _a, _b: None, max_tokens=args.max_tokens,
        temperature=args.temperature)


async def score(bench: CodeBenchmark, files: Mapping[str, str], env: EvaluationEnv
                ) -> tuple[float, int]:
    """(mean training score, runs that failed) of ``files``."""
    evaluation = await bench.evaluate({p: t.encode() for p, t in files.items()},
                                      bench.split("train"), env)
    return evaluation.mean, evaluation.failures


async def one_child(operator: Any, bench: CodeBenchmark, files: Mapping[str, str],
                    feedback: str, llm: LLMClient, env: EvaluationEnv, seed: int,
                    parent_score: float, tally: Tally, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    try:
        mutation = await operator.mutate(context(bench, files, feedback, llm, seed, args))
    except InvalidChild as exc:
        exchanges, reason = exc.exchanges, exc.reason
    else:
        exchanges, reason = mutation.exchanges, None
    tally.made += 1
    tally.seconds += time.perf_counter() - started
    tally.tokens += sum(e.get("prompt_tokens", 0) + e.get("completion_tokens", 0)
                        for e in exchanges)
    tally.cut += any(e.get("finish_reason") == "length" for e in exchanges)
    if reason is not None:
        tally.applied += not any(word in reason for word in FORMAT)
        tally.reasons[_short(reason)] += 1
        return
    tally.applied += 1
    tally.compiled += 1
    child_score, failures = await score(bench, mutation.files, env)
    if failures:
        tally.reasons[f"evaluation: {failures} failed runs"] += 1
        return
    tally.valid += 1
    tally.changed += child_score != parent_score
    tally.better += child_score > parent_score


def _short(reason: str) -> str:
    """A reason without the parts that differ from child to child (quoted text, numbers)."""
    words = []
    for word in reason.split():
        if any(c.isdigit() for c in word) or word.startswith(("'", '"', "(starting")):
            word = "…"
        words.append(word)
    return " ".join(words)[:110]


async def main(args: argparse.Namespace) -> None:
    bench = make_code_benchmark(args.benchmark)
    files = dict(bench.seed_files())
    if args.base_url:
        server: Any = ExternalServer(args.base_url, args.model or "default",
                                     grammar_field=args.grammar_field)
    else:
        server = LlamaCppServer(args.model_path, n_parallel=2, n_ctx=args.context,
                                threads=args.threads)
    operators = [name.strip() for name in args.operators.split(",") if name.strip()]
    tallies: dict[str, Tally] = {}
    with open_executor(SandboxSpec(args.sandbox, workers=2)) as executor:
        env = EvaluationEnv(executor)
        parent_score, failures = await score(bench, files, env)
        feedback = f"training score {parent_score:.4f}, {failures} failed runs"
        last = args.seed + args.n - 1
        print(f"{args.benchmark}: parent (seed program) training score {parent_score:.4f}; "
              f"{args.n} children per operator and mode, seeds {args.seed}..{last}", flush=True)
        async with server, server.client(max_concurrency=1, timeout=args.timeout) as llm:
            print(f"mutator: {llm.model} at {llm.base_url} "
                  f"({'takes' if llm.constrains else 'takes no'} grammar)", flush=True)
            for name in operators:
                for constrained in (True, False):
                    operator = CODE_OPERATORS[name](constrained=constrained)
                    label = f"{name} {'constrained' if constrained else 'free'}"
                    tally = tallies[label] = Tally()
                    for seed in range(args.seed, args.seed + args.n):
                        await one_child(operator, bench, files, feedback, llm, env, seed,
                                        parent_score, tally, args)
                    print(f"  {label}: done", file=sys.stderr, flush=True)
    print()
    print(f"{'operator, mode':<28}" + "".join(f"{h:>9}" for h in (
        "apply", "compile", "valid", "changed", "better", "cut", "tokens", "s/child")))
    for label, tally in tallies.items():
        print(tally.row(label))
    print("\nwhy children died (count, reason):")
    for label, tally in tallies.items():
        for reason, count in tally.reasons.most_common():
            print(f"  {label:<26} {count:>3}  {reason}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--benchmark", default="circle_packing", help="a code benchmark kind")
    add("--operators", default="diff_edit,full_rewrite", help="code operators, comma-separated")
    add("--n", type=int, default=8, help="children per operator and mode")
    add("--seed", type=int, default=0, help="seed of the first child")
    add("--model-path", default=None, help="a GGUF file (default: the embedded model)")
    add("--base-url", default=None, help="an OpenAI-compatible server instead (…/v1)")
    add("--model", default=None, help="the model name at --base-url")
    add("--grammar-field", default=None,
        help="the request field in which --base-url takes a GBNF grammar")
    add("--max-tokens", type=int, default=768, help="max tokens of each reply")
    add("--temperature", type=float, default=0.8)
    add("--context", type=int, default=4096, help="llama.cpp context per slot")
    add("--threads", type=int, default=None, help="llama.cpp threads")
    add("--timeout", type=float, default=600.0, help="seconds per LLM request")
    add("--sandbox", default="bwrap", help="sandbox backend of the evaluations")
    args = p.parse_args(argv)
    if args.n < 1 or args.max_tokens < 1:
        p.error("--n and --max-tokens must be at least 1")
    unknown = [o for o in args.operators.split(",") if o.strip() not in CODE_OPERATORS]
    if unknown:
        p.error(f"unknown code operator {unknown[0]!r}; choose from {', '.join(CODE_OPERATORS)}")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
