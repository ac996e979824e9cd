"""The framework's own time per candidate as the archive grows (target: < 1 ms, flat).

    python benchmarks/overhead.py [--sizes 1000,10000,100000] [--children 500]
        [--generation 25] [--repeat 3] [--quick] [--cache-dir DIR] [--profile DIR]
        [--selector NAME[,NAME...]|all] [--selector-options JSON]

An instant stub OpenAI server (``python -m tests.stub_openai``, its own process) and a
trivial benchmark stand in for the models; the rest is real: an ``SQLiteStorage`` pre-filled
with N evaluated candidates (cached in --cache-dir, not measured; shaped as the row's
selector leaves an archive: for selectors that retire the losers (tournament, islands with
tournaments inside) 50 alive and the rest retired, for the others (dgm, map_elites,
pareto, clade, islands with dgm or map_elites inside) all alive, since they retire nobody
and the population is the whole archive), the selectors, the default operators, the engine,
loop and clients (backend ``external``) opened by ``evolve.open_loop`` as ``Run.execute``
opens them. The rows are tournament and dgm unless --selector names others (``all``: every
registered selector; --selector-options: the options of a single one). The archive holds no
descriptors written by a selector, so the two shapes serve every selector. Under islands,
every candidate descends from the one founder (slot 0) and so lives on island 0 (no
``island`` descriptor: first parents' islands); the others hold guests only (that
founder, and island 0's migrants on island 1), which in the retired shape are mostly not
alive, so those islands hand their share on and the children join island 0. Before the
clock starts, each pass makes one throwaway selection, so that the selector builds its
caches from the archive (a one-off per process, like loading the archive; "sel0 s"). Each
row makes --children candidates --repeat + 1 times on fresh copies of the archive. The
clean passes give wall and CPU time per candidate (the median; with --profile they run
under cProfile). With two or more cores the stub and this process are pinned to different
cores, so that neither's scheduling moves the other's figures. The instrumented pass
splits the event-loop thread's time into exclusive phases: a phase label travels with
each asyncio task in a context variable set by timing wrappers, and task steps, wrapped
calls, garbage collections and waits in the selector ("idle") charge the time since the
last switch to the running label.
"stub ms": the raw-socket round trip x LLM requests per candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import gc
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import archive as ar  # noqa: E402
from evolve import Budget, PromptGenome, config_from_data, open_loop  # noqa: E402
from evolve.llm import LLMClient  # noqa: E402
from evolve.operators import (  # noqa: E402
    SYSTEM_PROMPT,
    default_mutation_prompts,
    default_thinking_styles,
)
from evolve.selection import SELECTORS  # noqa: E402
from fitness import Benchmark, Example, render_messages, score_output  # noqa: E402

POPULATION, PREFILL_VERSION = 50, 1
MODES, DEFAULT_SELECTORS = ("generational", "steady_state"), ("tournament", "dgm")
PHASES = ("select", "operator", "mut LLM", "eval", "task LLM", "db write", "db cache", "loop",
          "gc", "idle", "busy")


class Addition(Benchmark):
    """'What is a+b?' with a = 0 in every other example: the stub echoes the question, whose
    last number is b, so half of the answers are right."""

    name, description, answer_format = "addition", "Add two numbers.", "Reply with the sum only."

    def __init__(self) -> None:
        pairs = [((i % 2) * (1 + i % 9), i // 2 % 60) for i in range(340)]
        items = [Example(f"q{i}", f"What is {a}+{b}?", str(a + b))
                 for i, (a, b) in enumerate(pairs)]
        self._splits = {"train": items[:300], "validation": items[300:320], "test": items[320:]}

    def split(self, name: str) -> list[Example]:
        return self._splits[name]

    def score(self, example: Example, output: str) -> float:
        return score_output(output, example.answer, "number")


@dataclass
class Result:
    size: int
    mode: str
    selector: str
    options: dict[str, Any] = field(default_factory=dict)  # evolution.selector_options
    made: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    requests: int = 0
    open_s: float = 0.0
    first_select_s: float = 0.0  # the throwaway selection before the clock starts
    phases: dict[str, float] = field(default_factory=dict)


class Clock:
    """Exclusive wall time per phase of the event-loop thread (see the module docstring)."""

    def __init__(self) -> None:
        self.phase: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="loop")
        self.totals: dict[str, float] = defaultdict(float)
        self.current, self.mark = "loop", time.perf_counter()

    def switch(self, label: str) -> str:
        now = time.perf_counter()
        self.totals[self.current] += now - self.mark
        previous, self.current, self.mark = self.current, label, now
        return previous

    def sync(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            previous = self.switch(label)
            try:
                return fn(*args, **kwargs)
            finally:
                self.switch(previous)
        return timed

    def coro(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            token = self.phase.set(label)
            self.switch(label)
            try:
                return await fn(*args, **kwargs)
            finally:
                self.phase.reset(token)
                self.switch(self.phase.get())
        return timed

    @contextmanager
    def hooked(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """Charge each task step to its task's label, the selector's waits to "idle" and
        garbage collections to "gc" (patches asyncio internals for this pass only)."""
        handle_cls, run, clock = asyncio.events.Handle, asyncio.events.Handle._run, self
        selector = loop._selector  # type: ignore[attr-defined]

        def timed_run(handle: asyncio.Handle) -> None:
            clock.switch(handle._context.get(clock.phase, "loop"))  # type: ignore[attr-defined]
            try:
                run(handle)
            finally:
                clock.switch("asyncio")

        def on_gc(phase: str, _info: dict[str, int]) -> None:
            if phase == "start":
                outside.append(clock.switch("gc"))
            elif outside:
                clock.switch(outside.pop())

        outside: list[str] = []
        handle_cls._run = timed_run  # type: ignore[method-assign]
        selector.select = self.sync("idle", selector.select)
        gc.callbacks.append(on_gc)
        self.switch("loop")
        self.totals.clear()
        try:
            yield
        finally:
            self.switch("loop")
            gc.callbacks.remove(on_gc)
            handle_cls._run = run  # type: ignore[method-assign]
            del selector.select


def instrument(clock: Clock, storage: ar.SQLiteStorage, engine: Any) -> None:
    """Shadow methods of this pass's objects with timing wrappers (instance attributes, set
    with ``object.__setattr__`` because selectors and operators are frozen dataclasses)."""
    sync = [(storage, "write", "db write"), (storage, "cache_get", "db cache"),
            (engine.selector, "select", "select")]
    coro = [(op, "mutate", "operator") for op in engine.operators.values()]
    coro += [(engine, "make_child", "operator"), (engine, "evaluate", "eval"),
             (engine, "validate", "eval"), (engine.mutator, "chat", "mut LLM"),
             (engine.task, "chat", "task LLM")]
    for wrap, targets in ((clock.sync, sync), (clock.coro, coro)):
        for obj, name, label in targets:
            object.__setattr__(obj, name, wrap(label, getattr(obj, name)))


def retires(selector: str, options: dict[str, Any]) -> bool:
    """Whether ``selector`` retires members (so that its population stays small)."""
    return selector == "tournament" or (
        selector == "islands" and options.get("inner", "tournament") == "tournament")


def prefilled(size: int, cache_dir: Path, bench: Addition, *,
              retire: bool = True) -> tuple[Path, str]:
    """A closed archive of ``size`` evaluated candidates (cached), and how it was got. With
    ``retire`` each child retires the member made ``POPULATION`` candidates before it (a
    tournament's archive); without, every candidate stays alive (a DGM archive). No
    selector's descriptors are written, so either shape serves any selector that retires
    (or does not)."""
    shape = "tournament" if retire else "dgm"
    path = cache_dir / f"overhead-s{ar.SCHEMA_VERSION}-v{PREFILL_VERSION}-{shape}-{size}.sqlite"
    if path.exists():
        return path, f"cached {path}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp, start = path.with_name(f"{path.name}.{os.getpid()}.tmp"), time.perf_counter()
    storage, rng = ar.SQLiteStorage(tmp), np.random.default_rng(size)
    styles, mutation_prompts = default_thinking_styles(), default_mutation_prompts()
    train, usage = bench.split("train"), ar.Usage(1, 0, 7, 3)
    try:
        for first in range(1, size + 1, 1000):
            items = []
            for cid in range(first, min(first + 1000, size + 1)):
                mp = mutation_prompts[cid % len(mutation_prompts)]
                prompt = f"{styles[cid % len(styles)]} (variant {cid})"
                request = f"{mp}\n\nORIGINAL INSTRUCTION:\n{prompt}\n\nReply with the rewritten"
                exchange = {"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                                         {"role": "user", "content": request}],
                            "params": {"max_tokens": 160, "temperature": None, "seed": cid},
                            "response": f"echo: {request}", "cached": False,
                            "prompt_tokens": 7, "completion_tokens": 3, "finish_reason": "stop"}
                parents = (int(rng.integers(max(1, cid - POPULATION), cid)),) if cid > 1 else ()
                items.append((ar.NewCandidate(
                    cid - 1, "prompt", PromptGenome((prompt,), mp).to_dict(), parents,
                    "first_order_direct", (cid - 1) // 25,
                    {"exchanges": [exchange], "seconds": 0.001}, usage),
                    (cid - POPULATION,) if retire and cid > POPULATION else ()))  # the loser
            for c in storage.add_candidates(items):
                ex = train[int(rng.integers(len(train)))]
                out = "echo: " + render_messages(c.genome["task_prompts"], (), ex.question,
                                                 bench.answer_format)[0]["content"]
                mean = bench.score(ex, out)
                scores = [ar.SplitScore("train", mean, (ar.ExampleScore(ex.id, mean, out),))]
                storage.finish_candidate(c.id, ar.Status.EVALUATED, scores=scores, usage=usage,
                                         timings={"evaluate": 0.001})
                storage.cache_put(hashlib.sha256(out.encode()).hexdigest(), {"model": "stub", "m": [
                    {"role": "user", "content": out[6:]}]}, {"choices": [{"message": out}]})
    finally:
        storage.close()
    os.replace(tmp, path)
    return path, f"prefilled in {time.perf_counter() - start:.1f} s, cached as {path}"


async def run_pass(storage: ar.SQLiteStorage, directory: Path, result: Result,
                   args: argparse.Namespace, clock: Clock | None) -> None:
    """Open the loop as ``Run.execute`` does (``evolve.open_loop``) and make --children
    candidates."""
    llm = {"backend": "external", "base_url": args.base_url, "model": "stub"}
    config = config_from_data({
        "llm": {"mutator": llm, "task": llm},
        "fitness": {"batch_size": 1, "validation_size": 4, "validate_top": 2},
        "evolution": {"mode": result.mode, "selector": result.selector,
                      "selector_options": result.options,
                      "population_size": POPULATION, "generation_size": args.generation},
        "budget": {"candidates": len(storage) + args.children},
    })
    budget = Budget(config.budget)
    async with open_loop(config, storage, directory, budget,
                         benchmark=Addition()) as loop:
        engine = loop.engine
        start = time.perf_counter()  # the selector builds its caches: not per candidate
        engine.selector.select(storage.index, np.random.default_rng(0), 1)
        result.first_select_s = time.perf_counter() - start
        if clock is not None:
            instrument(clock, storage, engine)
        before = len(storage)
        budget.start()
        with clock.hooked(asyncio.get_running_loop()) if clock else nullcontext():
            start, cpu = time.perf_counter(), time.process_time()
            await (loop.generational() if result.mode == "generational" else loop.steady_state())
            engine.writer.close()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        result.made = len(storage) - before
        result.requests = engine.mutator.stats().calls + engine.task.stats().calls
        if clock is None:
            result.wall, result.cpu = wall, cpu
        else:
            result.phases = dict(clock.totals)


def copy_synced(source: Path, target: Path) -> None:
    """Copy and flush to disk: otherwise the kernel writes the copy (200 MB at 100k) back
    in the middle of the pass, and the commits measured wait for that I/O."""
    shutil.copyfile(source, target)
    with open(target, "rb+") as f:
        os.fsync(f.fileno())


def measure(path: Path, result: Result, args: argparse.Namespace) -> Result:
    """``--repeat`` clean passes (their median wall and CPU time), then one instrumented."""
    walls, cpus = [], []
    for clock in [None] * max(1, args.repeat) + [Clock()]:
        with tempfile.TemporaryDirectory() as tmp:
            copy_synced(path, Path(tmp) / "archive.sqlite")
            start = time.perf_counter()
            storage = ar.SQLiteStorage(Path(tmp) / "archive.sqlite")
            gc.freeze()  # as Run.execute does: the loaded archive is long-lived
            result.open_s = time.perf_counter() - start
            profiler = cProfile.Profile() if args.profile and clock is None else None
            try:
                with profiler or nullcontext():
                    asyncio.run(run_pass(storage, Path(tmp), result, args, clock))
            finally:
                storage.close()
                del storage
                gc.unfreeze()  # let the archive go: each pass starts as a new run does
                gc.collect()
            if profiler:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(args.profile / f"{result.mode}-{result.selector}-"
                                                   f"{result.size}.prof")
            if clock is None:
                walls.append(result.wall)
                cpus.append(result.cpu)
    result.wall, result.cpu = statistics.median(walls), statistics.median(cpus)
    return result


def socket_round_trip(base_url: str, n: int) -> float:
    """Median seconds of one request/response on a kept-alive blocking socket."""
    url = urlsplit(base_url)
    question = "Solve the problem.\n\nWhat is 0+7?\n\nReply with the sum only."
    body = json.dumps({"model": "stub", "messages": [{"role": "user", "content": question}]})
    request = (f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
               "Content-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    times = []
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            start, data = time.perf_counter(), b""
            sock.sendall(request)
            while not data.endswith(b"}"):  # the end of the stub's JSON body
                data += sock.recv(65536)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


async def client_round_trip(base_url: str, n: int) -> float:
    """Median seconds of one ``LLMClient.chat`` (no cache) to the stub."""
    times = []
    async with LLMClient(base_url, "stub", cache=None) as client:
        for i in range(n):
            start = time.perf_counter()
            await client.chat([{"role": "user", "content": f"What is 0+{i}?"}], seed=i)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def print_row(r: Result, stub_rt: float) -> None:
    n, busy = max(r.made, 1), sum(v for k, v in r.phases.items() if k != "idle")
    req = r.requests / n
    print(f"{r.mode:<13}{r.selector:<11}{r.size:>8,}{r.open_s:>7.1f}{r.first_select_s:>7.2f}"
          f"{r.made:>6}"
          f"{r.wall / n * 1e3:>9.3f}{r.cpu / n * 1e3:>8.3f}{busy / n * 1e3:>9.3f}{req:>6.2f}"
          f"{req * stub_rt * 1e3:>9.3f}{(r.wall / n - req * stub_rt) * 1e3:>10.3f}", flush=True)


def print_breakdown(results: list[Result]) -> None:
    print("\nbreakdown, ms per candidate: exclusive event-loop time in the instrumented pass "
          "(operator: make_child and operator code;\neval: evaluate/validate code and scoring; "
          "db write: group commits of new candidates, results and\nLLM-cache entries; db cache: "
          "cache lookups; loop: Loop glue and asyncio)")
    print(f"{'mode':<13}{'selector':<11}{'archive':>8}" + "".join(f"{c:>9}" for c in PHASES))
    for r in results:
        p, n = defaultdict(float, r.phases), max(r.made, 1)
        p["loop"] += p["asyncio"]
        p["busy"] = sum(v for k, v in r.phases.items() if k != "idle")
        print(f"{r.mode:<13}{r.selector:<11}{r.size:>8,}"
              + "".join(f"{p[c] / n * 1e3:>9.3f}" for c in PHASES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--sizes", default="1000,10000,100000", help="archive sizes, comma-separated")
    add("--children", type=int, default=500, help="candidates made per row")
    add("--generation", type=int, default=25, help="children per generation")
    add("--quick", action="store_true", help="smoke run: sizes 300,1000 and 50 children")
    add("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "cladeforge-overhead",
        help="where pre-filled archives are kept between invocations")
    add("--profile", type=Path, default=None, help="write cProfile files of clean passes here")
    add("--repeat", type=int, default=3,
        help="clean passes per row; the median is shown (this machine's speed drifts)")
    add("--selector", default=",".join(DEFAULT_SELECTORS),
        help="selectors to measure, comma-separated, or 'all': " + ", ".join(SELECTORS))
    add("--selector-options", type=json.loads, default={}, metavar="JSON",
        help="options of the selector (evolution.selector_options; one selector only)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.children, args.repeat = "300,1000", 50, 1
    sizes = [int(s) for s in args.sizes.split(",")]
    selectors = list(SELECTORS) if args.selector == "all" else args.selector.split(",")
    unknown = [s for s in selectors if s not in SELECTORS]
    if unknown or not isinstance(args.selector_options, dict) or (
            args.selector_options and len(selectors) != 1):
        parser.error(f"unknown selector {unknown[0]!r}" if unknown else
                     "--selector-options takes a JSON object, for one --selector")
    rows = [(mode, selector) for mode in MODES for selector in selectors]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2  # the stub and the framework each on a core of its own
    stub = subprocess.Popen(
        [sys.executable, "-m", "tests.stub_openai"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[-1]})) if pinned else None)
    if pinned:
        os.sched_setaffinity(0, {cpus[0]})
    try:
        assert stub.stdout is not None
        args.base_url = stub.stdout.readline().strip()
        samples = 100 if args.quick else 1000
        sock_rt = socket_round_trip(args.base_url, samples)
        client_rt = asyncio.run(client_round_trip(args.base_url, samples))
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; stub at {args.base_url}"
              + (f"; framework on cpu {cpus[0]}, stub on cpu {cpus[-1]}" if pinned else "")
              + f"; clean passes per row: {args.repeat} (median shown)")
        print(f"stub round trip (median of {samples}): raw socket {sock_rt * 1e3:.3f} ms, "
              f"LLMClient.chat {client_rt * 1e3:.3f} ms")
        if args.selector_options:
            print(f"{selectors[0]} options: {json.dumps(args.selector_options)}")
        paths = {}
        for size in sizes:
            for selector in selectors:
                retire = retires(selector, args.selector_options)
                paths[size, retire], how = prefilled(size, args.cache_dir, Addition(),
                                                     retire=retire)
                print(f"archive of {size:,} candidates for {selector}: {how}", flush=True)
        print(f"\n{'mode':<13}{'selector':<11}{'archive':>8}{'open s':>7}{'sel0 s':>7}{'made':>6}"
              f"{'wall ms':>9}{'cpu ms':>8}{'busy ms':>9}{'req':>6}{'stub ms':>9}"
              f"{'wall-stub':>10}   (ms per candidate; open s: load + first full gc; "
              "sel0 s: the selector's first selection)")
        results = []
        for size in sizes:
            for mode, selector in rows:
                path = paths[size, retires(selector, args.selector_options)]
                result = Result(size, mode, selector, dict(args.selector_options))
                results.append(measure(path, result, args))
                print_row(results[-1], sock_rt)
        print_breakdown(results)
        print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        stub.terminate()
        stub.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
