"""How many of a model's children are valid, per operator, with and without constraints
and the repair turn.

    python benchmarks/valid_children.py [--benchmark circle_packing] [--n 8]
        [--operators diff_edit,full_rewrite] [--modes constrained+repair,constrained,free]
        [--parents-from RUN_DIR --parents 3] [--examples 20]
        [--model-path FILE.gguf] [--base-url URL --model M --grammar-field FIELD]
        [--max-tokens 768] [--prompt-max-tokens 96] [--task-max-tokens 96]
        [--temperature 0.8] [--context 8192] [--threads T] [--timeout 600]
        [--sandbox bwrap] [--seed 0]

Each operator makes --n children with the mutator model (the embedded SmolLM2-135M by
default; any GGUF through --model-path; any OpenAI-compatible server through --base-url,
with --grammar-field naming the request field in which it takes a GBNF grammar, if it
does) in each mode, at the same seeds and from the same parents, in one run. Child i
(0-based) of every operator and mode has the seed --seed + i and the parent i modulo the
number of parents. Children are independent: no child's failure is shown to the next
(the operator's ``attempts`` are empty).

Options:

- --benchmark: a code benchmark (circle_packing, bin_packing, ...: the code operators) or a
  prompt benchmark (arithmetic, word_sorting, ...: the prompt operators). Default
  circle_packing, or the benchmark of --parents-from.
- --operators: comma-separated. Code default: diff_edit,full_rewrite. Prompt default:
  zero_order_direct,first_order_direct,zero_order_hyper,first_order_hyper,lineage,eda.
  An operator that cannot apply to a parent (a crossover or merge with one member, a
  Lamarckian step without a correct working-out: ``NotApplicable``, where a run would draw
  another operator) makes no child of it: such children are left out of the rates and
  counted as not_applicable below the table; a row whose operator applied to no parent
  says "not applicable" and why.
- --modes: comma-separated, of ``constrained+repair`` (the answer constrained by the
  operator's grammar while the model writes it, and one repair turn: an answer that makes
  no valid child is sent back once with the exact error), ``constrained`` (grammar, no
  repair) and ``free`` (neither). Default all three. Prompt operators have no repair
  turn: for them ``constrained+repair`` is ``constrained`` (run once).
- --n: children per operator and mode.  --seed: the seed of the first child.
- --parents-from RUN_DIR: the parents are the best evaluated candidates of that run's
  archive (best training score first, at most --parents of them), and the operators see
  that archive (population, lineage); otherwise the parent is the benchmark's seed program
  or the seed prompt "Solve the problem." (--seed-prompt).
- --examples: prompt benchmarks: the first this many training examples score the parents
  and every valid child (a fixed subset). Code benchmarks use the whole training split.
- --max-tokens: the code mutator's reply limit; --prompt-max-tokens: the prompt mutator's;
  --task-max-tokens: the task model's (prompt benchmarks; temperature 0).
- --temperature: the mutator's temperature.  --timeout: seconds per LLM request.
- --context: llama.cpp context per slot (two slots; code requests are sized to leave
  room for a reply of --max-tokens in it).  --threads: llama.cpp threads.
- --sandbox: where code children run (bwrap, docker, process).

Code table, per operator and mode (rates over all children made):

- apply: the answer made a child tree (its failure, if any, is a syntax error or a
  duplicate: not no_block, invalid_output, no_match, outside_markers, truncated, nor an
  LLM error or timeout);
- compile: applied and every changed Python file compiles (its failure, if any, is
  duplicate: a child equal to its parent applied and compiled but is not valid);
- valid: the child ran and was scored on every training example without a failure;
- changed: valid, and its score differs from the parent's;
- better: valid, and its score is higher than the parent's;
- repair: needed a repair turn (the first answer made no valid child);
- rep>ok: of those, how many became valid (a count: valid/repaired);
- cut: a reply (the first or the repair) was cut at max_tokens;
- tokens: prompt and completion tokens per child (all its exchanges);
- s/child: seconds per child of the mutation (all its exchanges); s/eval: seconds per
  evaluated child of its evaluation in the sandbox.

Prompt table, per operator and mode: valid (a usable prompt that differs from its
parent), changed (valid, and its score on the examples differs from the parent's), better
(higher), cut, tokens, s/child, s/eval (scoring a valid child on the examples).

Below each table: the children that were not valid, counted by failure kind (the
operator's ``InvalidChild.failure``; an evaluation's by the sandbox's end reason:
runtime_error, timeout, resource_limit, sandbox_error), each kind with one example reason.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import (  # noqa: E402
    ArchiveIndex,
    Candidate,
    ExampleScore,
    Failure,
    SplitScore,
    Status,
    Usage,
)
from evolve import LLMError, PromptGenome, Run  # noqa: E402
from evolve.code import CodeGenome, RunRepo  # noqa: E402
from evolve.code.operators import (  # noqa: E402
    CODE_OPERATORS,
    CodeMutationContext,
    default_code_hyper_mutation_prompts,
    default_code_mutation_prompts,
)
from evolve.llm import ExternalServer, LlamaCppServer, LLMClient  # noqa: E402
from evolve.operators import (  # noqa: E402
    OPERATORS,
    InvalidChild,
    MutationContext,
    NotApplicable,
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
)
from fitness import (  # noqa: E402
    BENCHMARK_KINDS,
    Benchmark,
    Example,
    PromptEvaluator,
    make_benchmark,
)
from fitness.code import (  # noqa: E402
    CODE_BENCHMARK_KINDS,
    CodeBenchmark,
    EvaluationEnv,
    make_code_benchmark,
)
from sandboxes import EndReason, SandboxSpec, open_executor  # noqa: E402

#: mode -> (constrained, repairs)
MODES: dict[str, tuple[bool, int]] = {
    "constrained+repair": (True, 1), "constrained": (True, 0), "free": (False, 0)}
CODE_DEFAULT = ("diff_edit", "full_rewrite")
PROMPT_DEFAULT = ("zero_order_direct", "first_order_direct", "zero_order_hyper",
                  "first_order_hyper", "lineage", "eda")
#: the failures of an answer that still made a child tree (the rest made none)
APPLIED = frozenset({Failure.SYNTAX_ERROR, Failure.DUPLICATE})
#: the failure kind of a sandboxed run that ended for each reason other than OK
EVALUATION_FAILURE = {
    EndReason.EXIT: Failure.RUNTIME_ERROR, EndReason.TIMEOUT: Failure.TIMEOUT,
    EndReason.OOM: Failure.RESOURCE_LIMIT, EndReason.PIDS: Failure.RESOURCE_LIMIT,
    EndReason.OUTPUT_LIMIT: Failure.RESOURCE_LIMIT, EndReason.ERROR: Failure.SANDBOX_ERROR}
SEED_PROMPT = "Solve the problem."
LABEL = 30  # width of the "operator, mode" column


@dataclass
class Tally:
    """What one operator's children in one mode came to."""

    made: int = 0
    applied: int = 0
    compiled: int = 0
    valid: int = 0
    changed: int = 0
    better: int = 0
    repaired: int = 0
    repaired_valid: int = 0
    cut: int = 0
    tokens: int = 0
    seconds: float = 0.0
    evaluated: int = 0
    eval_seconds: float = 0.0
    not_applicable: str | None = None
    failures: Counter[str] = field(default_factory=Counter)  # operator failure kind -> n
    evaluation: Counter[str] = field(default_factory=Counter)  # evaluation failure kind -> n
    example: dict[str, str] = field(default_factory=dict)  # kind -> one reason

    def failed(self, kind: str, reason: str, *, evaluation: bool = False) -> None:
        (self.evaluation if evaluation else self.failures)[kind] += 1
        key = f"evaluation {kind}" if evaluation else kind
        self.example.setdefault(key, " ".join(reason.split())[:150])

    def exchanges(self, exchanges: Sequence[Mapping[str, Any]]) -> bool:
        """Count ``exchanges`` (one child's); True when one was a repair turn."""
        self.tokens += sum(e.get("prompt_tokens", 0) + e.get("completion_tokens", 0)
                           for e in exchanges)
        self.cut += any(e.get("finish_reason") == "length" for e in exchanges)
        repaired = any("repair" in e for e in exchanges)
        self.repaired += repaired
        return repaired

    def code_row(self, label: str) -> str:
        if self.not_applicable is not None and not self.made:
            return f"{label:<{LABEL}}  not applicable: {self.not_applicable}"
        n = max(1, self.made)
        rates = [self.applied, self.compiled, self.valid, self.changed, self.better,
                 self.repaired]
        return (f"{label:<{LABEL}}" + "".join(f"{r / n:>8.0%}" for r in rates)
                + f"{f'{self.repaired_valid}/{self.repaired}':>8}{self.cut / n:>8.0%}"
                + f"{self.tokens / n:>8.0f}{self.seconds / n:>8.1f}"
                + f"{self.eval_seconds / max(1, self.evaluated):>8.1f}")

    def prompt_row(self, label: str) -> str:
        if self.not_applicable is not None and not self.made:
            return f"{label:<{LABEL}}  not applicable: {self.not_applicable}"
        n = max(1, self.made)
        rates = [self.valid, self.changed, self.better, self.cut]
        return (f"{label:<{LABEL}}" + "".join(f"{r / n:>8.0%}" for r in rates)
                + f"{self.tokens / n:>8.0f}{self.seconds / n:>8.1f}"
                + f"{self.eval_seconds / max(1, self.evaluated):>8.1f}")

    def why(self) -> str:
        """The failure counts, one line."""
        parts = [f"{k} {n}" for k, n in self.failures.most_common()]
        parts += [f"evaluation {k} {n}" for k, n in self.evaluation.most_common()]
        return ", ".join(parts) if parts else "-"


CODE_HEADER = ("apply", "compile", "valid", "changed", "better", "repair", "rep>ok", "cut",
               "tokens", "s/child", "s/eval")
PROMPT_HEADER = ("valid", "changed", "better", "cut", "tokens", "s/child", "s/eval")


def print_table(title: str, header: Sequence[str], tallies: Mapping[str, Tally],
                row: str) -> None:
    print(f"\n{title}")
    print(f"{'operator, mode':<{LABEL}}" + "".join(f"{h:>8}" for h in header))
    for label, tally in tallies.items():
        print(getattr(tally, row)(label))
    print("\nchildren that were not valid, by failure kind:")
    for label, tally in tallies.items():
        if tally.made:
            print(f"  {label:<{LABEL}} {tally.why()}")
    print("\none reason of each kind:")
    for label, tally in tallies.items():
        if not tally.made:
            continue
        for kind, reason in tally.example.items():
            print(f"  {label}: {kind}: {reason}")


def progress(label: str, i: int, tally: Tally, started: float) -> None:
    """One line on stderr per child: its time, and the tally so far."""
    print(f"  {label} child {i + 1}: {time.perf_counter() - started:.0f} s; so far "
          f"{tally.valid}/{tally.made} valid, {tally.why()}", file=sys.stderr, flush=True)


def llm_failure(exc: LLMError) -> Failure:
    return Failure.TIMEOUT if isinstance(exc.__cause__, TimeoutError) else Failure.LLM_ERROR


def record(id_: int, kind: str, genome: Mapping[str, Any], score: SplitScore) -> Candidate:
    """An evaluated founder with ``score`` on train (the parent when no run is given)."""
    return Candidate(
        id=id_, slot=id_, kind=kind, genome=dict(genome), parent_ids=(), operator="seed",
        generation=0, status=Status.EVALUATED, reason=None, retired_by=None,
        scores={"train": score}, mutation=None, usage=Usage(), timings={}, descriptors={},
        created_at=0.0, updated_at=0.0)


def operator_modes(args: argparse.Namespace, prompt: bool) -> list[str]:
    if not prompt:
        return list(args.modes)
    # prompt operators have no repair turn: constrained+repair is constrained
    return list(dict.fromkeys("constrained" if m == "constrained+repair" else m
                              for m in args.modes))


def build(cls: type, constrained: bool, repairs: int) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    options: dict[str, Any] = {"constrained": constrained} if "constrained" in names else {}
    if "repairs" in names:
        options["repairs"] = repairs
    return cls(**options)


# -- code ----------------------------------------------------------------------------------------
@dataclass
class CodeParent:
    candidate: Candidate
    files: dict[str, str]
    score: float = 0.0
    feedback: str = ""


async def evaluate_code(bench: CodeBenchmark, files: Mapping[str, str], env: EvaluationEnv
                        ) -> tuple[float, Failure | None, str]:
    """(mean training score, the kind of the first failed run or None, its detail)."""
    evaluation = await bench.evaluate({p: t.encode() for p, t in files.items()},
                                      bench.split("train"), env)
    for r in evaluation.results:
        if r.reason is not EndReason.OK:
            kind = EVALUATION_FAILURE.get(r.reason, Failure.RUNTIME_ERROR)
            return evaluation.mean, kind, f"{r.reason}: {r.detail}"
    return evaluation.mean, None, ""


async def code_child(operator: Any, parent: CodeParent, bench: CodeBenchmark,
                     view: ArchiveIndex, llm: LLMClient, env: EvaluationEnv, seed: int,
                     tally: Tally, args: argparse.Namespace) -> None:
    ctx = CodeMutationContext(
        parent=parent.candidate, parent_files=parent.files, evolve_paths=bench.evolve_paths(),
        view=view, rng=np.random.default_rng(seed), llm=llm, problem=bench.description,
        feedback=parent.feedback, mutation_prompts=default_code_mutation_prompts(),
        hyper_mutation_prompts=default_code_hyper_mutation_prompts(),
        files_of=lambda _cid: parent.files, merge_base_files=lambda _a, _b: None,
        max_tokens=args.max_tokens, temperature=args.temperature,
        context_tokens=args.context_tokens)
    started = time.perf_counter()
    mutation, failure, reason, exchanges = None, None, "", ()
    try:
        mutation = await operator.mutate(ctx)
    except NotApplicable as exc:  # not a child: another operator would be drawn
        tally.not_applicable = exc.reason
        tally.failed(Failure.NOT_APPLICABLE.value, exc.reason)
        return
    except InvalidChild as exc:
        failure, reason, exchanges = exc.failure, exc.reason, exc.exchanges
    except LLMError as exc:
        failure, reason = llm_failure(exc), str(exc)
    else:
        exchanges = mutation.exchanges
    tally.made += 1
    tally.seconds += time.perf_counter() - started
    repaired = tally.exchanges(exchanges)
    if mutation is None:
        assert failure is not None
        tally.applied += failure in APPLIED
        tally.compiled += failure is Failure.DUPLICATE
        tally.failed(failure.value, reason)
        return
    tally.applied += 1
    tally.compiled += 1
    started = time.perf_counter()
    score, failed, detail = await evaluate_code(bench, mutation.files, env)
    tally.evaluated += 1
    tally.eval_seconds += time.perf_counter() - started
    if failed is not None:
        tally.failed(failed.value, detail, evaluation=True)
        return
    tally.valid += 1
    tally.repaired_valid += repaired
    tally.changed += score != parent.score
    tally.better += score > parent.score


def code_parents(bench: CodeBenchmark, args: argparse.Namespace
                 ) -> tuple[list[CodeParent], ArchiveIndex]:
    if args.parents_from is None:
        view = ArchiveIndex()
        candidate = record(1, "code", CodeGenome("0" * 40, "").to_dict(),
                           SplitScore("train", 0.0))
        view.publish(candidate)
        return [CodeParent(candidate, dict(bench.seed_files()))], view
    run = Run.open(args.parents_from)
    view = run.storage.index
    run.close()
    with RunRepo.for_run(args.parents_from) as repo:
        parents = [CodeParent(c, repo.text_files(CodeGenome.from_dict(c.genome).commit))
                   for c in view.top(args.parents)]
    return parents, view


async def code_section(bench: CodeBenchmark, llm: LLMClient, args: argparse.Namespace
                       ) -> dict[str, Tally]:
    parents, view = code_parents(bench, args)
    if not parents:
        raise SystemExit(f"{args.parents_from} has no evaluated candidate")
    tallies: dict[str, Tally] = {}
    with open_executor(SandboxSpec(args.sandbox, workers=2)) as executor:
        env = EvaluationEnv(executor)
        for i, parent in enumerate(parents):
            score, failed, detail = await evaluate_code(bench, parent.files, env)
            parent.score = score
            parent.feedback = (f"train score: {score:.4f} (0 to 1)"
                               + (f"\nThe evaluation failed: {detail}" if failed else ""))
            print(f"parent {i + 1} (candidate {parent.candidate.id}): training score "
                  f"{score:.4f}" + (f", {failed.value}" if failed else ""), flush=True)
        for name in args.operators:
            for mode in operator_modes(args, prompt=False):
                operator = build(CODE_OPERATORS[name], *MODES[mode])
                label = f"{name} {mode}"
                tally = tallies[label] = Tally()
                for i in range(args.n):
                    started = time.perf_counter()
                    await code_child(operator, parents[i % len(parents)], bench, view, llm,
                                     env, args.seed + i, tally, args)
                    progress(label, i, tally, started)
                print(f"  {label}: done, {tally.valid}/{tally.made} valid", file=sys.stderr,
                      flush=True)
    print_table(f"{args.benchmark}: code operators, children per operator and mode: {args.n}",
                CODE_HEADER, tallies, "code_row")
    return tallies


# -- prompts -------------------------------------------------------------------------------------
@dataclass
class PromptParent:
    candidate: Candidate
    score: float
    correct: list[tuple[str, str]]


async def score_prompt(evaluator: PromptEvaluator, genome: PromptGenome,
                       examples: Sequence[Example]) -> SplitScore:
    result = await evaluator.evaluate(genome.task_prompts, genome.context, examples, seed=0)
    return SplitScore("train", result.mean, tuple(
        ExampleScore(r.example_id, r.score, r.output) for r in result.results))


async def prompt_parents(bench: Benchmark, evaluator: PromptEvaluator,
                         examples: Sequence[Example], args: argparse.Namespace
                         ) -> tuple[list[PromptParent], ArchiveIndex]:
    questions = {e.id: e.question for e in examples}
    if args.parents_from is None:
        view = ArchiveIndex()
        genome = PromptGenome((args.seed_prompt,), default_mutation_prompts()[0])
        candidates = [record(1, "prompt", genome.to_dict(), SplitScore("train", 0.0))]
    else:
        run = Run.open(args.parents_from)
        view = run.storage.index
        run.close()
        candidates = view.top(args.parents)
    parents = []
    for c in candidates:
        score = await score_prompt(evaluator, PromptGenome.from_dict(c.genome), examples)
        if args.parents_from is None:  # the seed's record carries its score (for lineage)
            c = dataclasses.replace(c, scores={"train": score})
            view.publish(c)
        correct = [(questions[e.example_id], e.output) for e in score.examples
                   if e.score >= 1.0]
        parents.append(PromptParent(c, score.mean, correct))
    return parents, view


async def prompt_child(operator: Any, parent: PromptParent, bench: Benchmark,
                       view: ArchiveIndex, llm: LLMClient, evaluator: PromptEvaluator,
                       examples: Sequence[Example], seed: int, tally: Tally,
                       args: argparse.Namespace) -> None:
    ctx = MutationContext(
        parent=parent.candidate, view=view, rng=np.random.default_rng(seed), llm=llm,
        problem=bench.description, thinking_styles=default_thinking_styles(),
        mutation_prompts=default_mutation_prompts(),
        hyper_mutation_prompts=default_hyper_mutation_prompts(),
        correct_workings=parent.correct, max_tokens=args.prompt_max_tokens,
        temperature=args.temperature)
    started = time.perf_counter()
    mutation, exchanges = None, ()
    try:
        mutation = await operator.mutate(ctx)
    except NotApplicable as exc:  # not a child: another operator would be drawn
        tally.not_applicable = exc.reason
        tally.failed(Failure.NOT_APPLICABLE.value, exc.reason)
        return
    except InvalidChild as exc:
        exchanges = exc.exchanges
        tally.failed(exc.failure.value, exc.reason)
    except LLMError as exc:
        tally.failed(llm_failure(exc).value, str(exc))
    else:
        exchanges = mutation.exchanges
    tally.made += 1
    tally.seconds += time.perf_counter() - started
    tally.exchanges(exchanges)
    if mutation is None:
        return
    tally.applied += 1
    tally.compiled += 1
    tally.valid += 1
    started = time.perf_counter()
    score = (await score_prompt(evaluator, mutation.genome, examples)).mean
    tally.evaluated += 1
    tally.eval_seconds += time.perf_counter() - started
    tally.changed += score != parent.score
    tally.better += score > parent.score


async def prompt_section(bench: Benchmark, llm: LLMClient, args: argparse.Namespace
                         ) -> dict[str, Tally]:
    examples = list(bench.split("train"))[: args.examples]
    evaluator = PromptEvaluator(bench, llm, max_tokens=args.task_max_tokens, temperature=0.0)
    parents, view = await prompt_parents(bench, evaluator, examples, args)
    if not parents:
        raise SystemExit(f"{args.parents_from} has no evaluated candidate")
    for i, parent in enumerate(parents):
        prompts = PromptGenome.from_dict(parent.candidate.genome).task_prompts
        print(f"parent {i + 1} (candidate {parent.candidate.id}): {prompts[0][:70]!r}, "
              f"score {parent.score:.3f} on {len(examples)} training examples", flush=True)
    if "constrained+repair" in args.modes:
        print("(prompt operators have no repair turn: constrained+repair runs as constrained)")
    tallies: dict[str, Tally] = {}
    for name in args.operators:
        for mode in operator_modes(args, prompt=True):
            operator = build(OPERATORS[name], *MODES[mode])
            label = f"{name} {mode}"
            tally = tallies[label] = Tally()
            for i in range(args.n):
                started = time.perf_counter()
                await prompt_child(operator, parents[i % len(parents)], bench, view, llm,
                                   evaluator, examples, args.seed + i, tally, args)
                progress(label, i, tally, started)
            print(f"  {label}: done, {tally.valid}/{tally.made} valid", file=sys.stderr,
                  flush=True)
    print_table(f"{args.benchmark}: prompt operators, children per operator and mode: "
                f"{args.n}, scored on {len(examples)} training examples", PROMPT_HEADER,
                tallies, "prompt_row")
    return tallies


# -- main ------------------------------------------------------------------------------------------
async def main(args: argparse.Namespace) -> dict[str, Tally]:
    options = dict(args.benchmark_options)
    prompt = args.benchmark in BENCHMARK_KINDS
    bench: Any = (make_benchmark(args.benchmark, **options) if prompt
                  else make_code_benchmark(args.benchmark, **options))
    if args.base_url:
        server: Any = ExternalServer(args.base_url, args.model or "default",
                                     grammar_field=args.grammar_field)
        args.context_tokens = None
    else:
        server = LlamaCppServer(args.model_path, n_parallel=2, n_ctx=args.context,
                                threads=args.threads)
        args.context_tokens = args.context
    last = args.seed + args.n - 1
    print(f"{args.benchmark}: {args.n} children per operator and mode, seeds "
          f"{args.seed}..{last}; modes {', '.join(args.modes)}", flush=True)
    async with server, server.client(max_concurrency=2, timeout=args.timeout) as llm:
        print(f"mutator: {llm.model} at {llm.base_url} "
              f"({'takes' if llm.constrains else 'takes no'} grammar)", flush=True)
        if prompt:
            return await prompt_section(bench, llm, args)
        return await code_section(bench, llm, args)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--benchmark", default=None,
        help="a code or prompt benchmark kind (default circle_packing, or the run's)")
    add("--operators", default=None, help="operators, comma-separated")
    add("--modes", default=",".join(MODES), help="modes, comma-separated: " + ", ".join(MODES))
    add("--n", type=int, default=8, help="children per operator and mode")
    add("--seed", type=int, default=0, help="seed of the first child")
    add("--parents-from", default=None, help="a run directory to take the parents from")
    add("--parents", type=int, default=3, help="most parents taken from --parents-from")
    add("--seed-prompt", default=SEED_PROMPT, help="the parent prompt without a run")
    add("--examples", type=int, default=20, help="training examples scored (prompts)")
    add("--model-path", default=None, help="a GGUF file (default: the embedded model)")
    add("--base-url", default=None, help="an OpenAI-compatible server instead (…/v1)")
    add("--model", default=None, help="the model name at --base-url")
    add("--grammar-field", default=None,
        help="the request field in which --base-url takes a GBNF grammar")
    add("--max-tokens", type=int, default=768, help="max tokens of a code mutator reply")
    add("--prompt-max-tokens", type=int, default=96,
        help="max tokens of a prompt mutator reply")
    add("--task-max-tokens", type=int, default=96, help="max tokens of a task-model reply")
    add("--temperature", type=float, default=0.8, help="the mutator's temperature")
    add("--context", type=int, default=8192, help="llama.cpp context per slot")
    add("--threads", type=int, default=None, help="llama.cpp threads")
    add("--timeout", type=float, default=600.0, help="seconds per LLM request")
    add("--sandbox", default="bwrap", help="sandbox backend of the code evaluations")
    args = p.parse_args(argv)
    if min(args.n, args.max_tokens, args.prompt_max_tokens, args.task_max_tokens,
           args.examples, args.parents) < 1:
        p.error("--n, --parents, --examples and the max tokens must be at least 1")
    args.benchmark_options = {}
    if args.parents_from is not None:
        try:
            run = Run.open(args.parents_from)
        except Exception as exc:  # noqa: BLE001 - the user's argument
            p.error(f"--parents-from: {exc}")
        kind, args.benchmark_options = run.config.fitness.benchmark, run.config.fitness.options
        run.close()
        if args.benchmark not in (None, kind):
            p.error(f"--benchmark {args.benchmark}: the run of --parents-from is on {kind}")
        args.benchmark = kind
    args.benchmark = args.benchmark or "circle_packing"
    prompt = args.benchmark in BENCHMARK_KINDS
    if not prompt and args.benchmark not in CODE_BENCHMARK_KINDS:
        p.error(f"unknown benchmark {args.benchmark!r}; choose from "
                f"{', '.join([*CODE_BENCHMARK_KINDS, *BENCHMARK_KINDS])}")
    registry = OPERATORS if prompt else CODE_OPERATORS
    names = args.operators.split(",") if args.operators else (
        PROMPT_DEFAULT if prompt else CODE_DEFAULT)
    args.operators = [n.strip() for n in names if n.strip()]
    unknown = [o for o in args.operators if o not in registry]
    if unknown or not args.operators:
        p.error(f"unknown operator {unknown[0] if unknown else ''!r}; choose from "
                f"{', '.join(registry)}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    wrong = [m for m in args.modes if m not in MODES]
    if wrong or not args.modes:
        p.error(f"unknown mode {wrong[0] if wrong else ''!r}; choose from {', '.join(MODES)}")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
