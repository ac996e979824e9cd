"""Which selectors keep a population diverse: the same task, budget and seeds under each
selector, with novelty rejection off and on, and the collapse monitor's readings.

    python benchmarks/diversity.py [--selectors tournament,dgm,map_elites,islands,pareto,clade]
        [--seeds 0,1] [--novelty 0.8] [--budget 24] [--set KEY=VALUE ...]
        [--model-path FILE.gguf] [--runs-dir DIR] [--quick]

Every run is ``evolve run`` in this process on one shared llama.cpp server (the embedded
SmolLM2-135M by default; any GGUF through --model-path), with the config below and the
--set overrides on top; its archive stays under --runs-dir (default a temporary
directory, removed at the end unless given), so ``evolve report DIR/RUN`` draws any of
them. Given again, --runs-dir keeps what is there: finished runs are read, not rerun, and
an interrupted one resumes, so a killed benchmark loses no finished run.
Defaults are sized to about an hour on 2 cores.

Columns, per selector and novelty setting, over the seeds (one value per seed, then the
mean):

- best val: the validation score of the run's best candidate (chosen on validation);
- pass@1, pass@K: the collapse monitor's last reading on its probe set (K: the largest k
  with a value); clades: live clades in that reading;
- collapse: in how many seeds the collapse signature (pass@1 rising while pass@K falls
  over diversity.window readings) appeared at any point of the run;
- rejected: children rejected as near duplicates (novelty on);
- minutes: each run's own elapsed time (summed over its resumptions).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evolve import Run, RunConfig, apply_overrides, config_from_data, run_status  # noqa: E402
from evolve.llm import LlamaCppServer  # noqa: E402

SELECTORS = ("tournament", "dgm", "map_elites", "islands", "pareto", "clade")


def base_config(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    llm = {"backend": "external", "base_url": base_url, "model": "model", "timeout": 600.0,
           "grammar_field": "grammar"}  # llama.cpp takes the operators' grammars
    return {
        "llm": {"mutator": {**llm, "temperature": 0.9, "max_tokens": 96},
                "task": {**llm, "temperature": 0.0, "max_tokens": 96}},
        "fitness": {"benchmark": "arithmetic", "options": {"validation_size": 60},
                    "batch_size": 4, "validate_top": 1, "validation_size": 60},
        "evolution": {"population_size": 8},
        "diversity": {"probe_size": 8, "probe_members": 8, "ks": [1, 2, 4, 8], "window": 3},
        "budget": {"candidates": args.budget},
    }


def one_run(args: argparse.Namespace, base_url: str, selector: str, novelty: float | None,
            seed: int) -> dict[str, Any]:
    name = f"{selector}-{'novel' if novelty else 'plain'}-s{seed}"
    data = base_config(args, base_url)
    data.update(name=name, runs_dir=str(args.runs_dir), seed=seed)
    data["evolution"]["selector"] = selector
    if novelty:
        data["diversity"]["novelty_threshold"] = novelty
    run = open_or_create(config_from_data(apply_overrides(data, args.overrides)), base_url)
    try:
        kept = run_status(run)["state"] == "finished"
        if not kept:
            run.execute()
        report = run_status(run)
    finally:
        run.close()
    best, last = report["best"], report["collapse"] or {}
    passes = {int(k): v for k, v in (last.get("pass_at_k") or {}).items() if v is not None}
    return {
        "best_val": best and best["validation"],
        "pass1": passes.get(1),
        "passK": passes[max(passes)] if passes else None,
        "K": max(passes) if passes else None,
        "clades": last.get("live_clades"),
        "collapse": last.get("first_warning") is not None,
        "rejected": report["children"]["by_reason"].get("near_duplicate", 0),
        "minutes": report["elapsed_seconds"] / 60,
        "kept": kept,
    }


def open_or_create(config: RunConfig, base_url: str) -> Run:
    """The run of ``config``: a new one, or the one an earlier (killed or finished) call left
    under the same runs directory, which resumes on this call's server; a run there made
    with another config is an error rather than a silently mixed table."""
    directory = Path(config.runs_dir) / config.name
    if not directory.exists():
        return Run.create(config)
    run = Run.open(directory, [f"llm.{role}.base_url={base_url}" for role in ("mutator", "task")])
    if run.config != config.model_copy(update={"runs_dir": run.config.runs_dir}):
        run.close()
        raise SystemExit(f"{directory} was made with another config; remove it or give "
                         "another --runs-dir")
    return run


def cell(values: list[Any], fmt: str = "{:.2f}") -> str:
    shown = [v for v in values if v is not None]
    if not shown:
        return "-"
    each = "/".join(fmt.format(v) for v in shown)
    return f"{fmt.format(statistics.fmean(shown))} ({each})" if len(shown) > 1 else each


def table(results: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    head = ("selector", "novelty", "best val", "pass@1", "pass@K", "clades", "collapse",
            "rejected", "minutes")
    rows = [head]
    for (selector, novelty), runs in results.items():
        k = next((r["K"] for r in runs if r["K"]), None)
        rows.append((selector, novelty, cell([r["best_val"] for r in runs]),
                     cell([r["pass1"] for r in runs]),
                     (f"K={k} " if k else "") + cell([r["passK"] for r in runs]),
                     cell([r["clades"] for r in runs], "{:.0f}"),
                     f"{sum(r['collapse'] for r in runs)}/{len(runs)}",
                     cell([r["rejected"] for r in runs], "{:.0f}"),
                     cell([r["minutes"] for r in runs], "{:.1f}")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True))
                     for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--selectors", default=",".join(SELECTORS))
    parser.add_argument("--seeds", default="0,1", help="comma-separated run seeds")
    parser.add_argument("--novelty", type=float, default=0.8,
                        help="diversity.novelty_threshold of the 'on' runs (0: no such runs)")
    parser.add_argument("--budget", type=int, default=24, help="candidates per run")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="a config override for every run")
    parser.add_argument("--model-path", help="a GGUF file (default: the embedded model)")
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tournament and pareto, one seed, 10 candidates")
    args = parser.parse_args()
    selectors = [s for s in args.selectors.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.quick:
        selectors, seeds, args.budget = ["tournament", "pareto"], seeds[:1], 10
    unknown = sorted(set(selectors) - set(SELECTORS))
    if unknown:
        parser.error(f"unknown selector(s): {', '.join(unknown)}")
    novelties: list[float | None] = [None] + ([args.novelty] if args.novelty else [])
    temporary = None
    if args.runs_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="diversity-")
        args.runs_dir = Path(temporary.name)
    server = LlamaCppServer(args.model_path, n_parallel=2, n_ctx=4096, threads=args.threads)
    asyncio.run(server.start())
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        total = len(selectors) * len(novelties) * len(seeds)
        done = 0
        for selector in selectors:
            for novelty in novelties:
                key = (selector, f"{novelty:g}" if novelty else "off")
                for seed in seeds:
                    result = one_run(args, server.base_url, selector, novelty, seed)
                    results.setdefault(key, []).append(result)
                    done += 1
                    print(f"[{done}/{total}] {selector} novelty {key[1]} seed {seed}: best val "
                          f"{cell([result['best_val']])}, pass@1 {cell([result['pass1']])}, "
                          f"pass@K {cell([result['passK']])}, {result['minutes']:.1f} min"
                          + (" (kept from an earlier call)" if result["kept"] else ""),
                          file=sys.stderr, flush=True)
    finally:
        asyncio.run(server.stop())
        if temporary is not None:
            temporary.cleanup()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
