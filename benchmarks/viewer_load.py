"""How fast ``evolve serve`` opens a large run (target: 100k candidates interactive in
under 5 s on 2 cores).

    python benchmarks/viewer_load.py [--sizes 1000,10000,100000] [--repeat 3]
        [--cache-dir DIR]

For each size, an archive of that many candidates (cached in --cache-dir; built with the
real ``SQLiteStorage``, not measured) is served by the viewer's app on uvicorn, and:

- the graph endpoint (``/api/graph``): its response size and the median time to fetch it;
- in headless Chromium (Debian's ``chromium`` through Playwright), from navigation start
  (the median over --repeat fresh pages): first paint (the browser's ``first-paint``
  entry: the header is on screen), the run and its graph read (``stages.fetch``), the
  graph built and handed to sigma (``stages.graph``), and interactive (the graph is drawn
  and answers: ``window.cladeforgeViewer.readyAt``, stamped after the first draw).

Archive shape: a generational run with a population of 50 (2 founders); each child's
first parent is drawn from the previous generation, one in 20 has a second parent (a
merge), two in three are evaluated, the rest failed or invalid, a third of the evaluated
ones are retired, and each carries an island (0-3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import (  # noqa: E402
    Finish,  # noqa: E402
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
)
from evolve.viewer import make_app  # noqa: E402

POPULATION = 50
BATCH = 2000


def build(path: Path, size: int) -> None:
    """An archive of ``size`` candidates shaped as the module doc says."""
    rng = np.random.default_rng(size)
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    storage = SQLiteStorage(tmp)
    previous: list[int] = []
    current: list[int] = []
    slot = 0
    while slot < size:
        news, finishes = [], []
        for _ in range(min(BATCH, size - slot)):
            generation = slot // POPULATION
            if generation != (slot - 1) // POPULATION and slot:
                previous, current = current, []
            parents: tuple[int, ...] = ()
            if previous:
                parents = (int(rng.choice(previous)),)
                if rng.random() < 0.05:
                    other = int(rng.choice(previous))
                    parents = parents if other == parents[0] else (*parents, other)
            elif slot >= 2:
                parents = (1 + slot % 2,)
            cid = slot + 1
            news.append((NewCandidate(slot, "prompt", {"task_prompts": [f"prompt {slot} " * 8]},
                                      parents, "mutate" if parents else "seed",
                                      generation=generation,
                                      descriptors={"island": int(rng.integers(4))}), ()))
            kind = rng.random()
            if kind < 2 / 3:
                finishes.append(Finish(cid, Status.EVALUATED,
                                       scores=(SplitScore("train", float(rng.random())),)))
            elif kind < 5 / 6:
                finishes.append(Finish(cid, Status.FAILED, reason="timeout"))
            else:
                finishes.append(Finish(cid, Status.INVALID, reason="no edit"))
            current.append(cid)
            slot += 1
        storage.write(finishes, new=news)
    storage.close()
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{tmp}{suffix}")
        if source.exists():
            source.rename(f"{path}{suffix}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(run_dir: Path) -> tuple[Any, int]:
    import uvicorn
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(run_dir), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, port


def endpoint(port: int, repeat: int) -> tuple[int, float]:
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/graph", timeout=120) as r:
            body = r.read()
        times.append(time.perf_counter() - started)
        size = len(body)
        json.loads(body)
    return size, statistics.median(times)


def in_browser(browser: Any, port: int, repeat: int) -> tuple[float, float, float, float]:
    paints, fetched, drawn, ready = [], [], [], []
    for _ in range(repeat):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 300
        while not page.evaluate("() => window.cladeforgeViewer?.readyAt ?? 0"):
            if time.monotonic() > deadline:
                raise SystemExit("the graph was not drawn within 300 s")
            time.sleep(0.02)
        ready.append(page.evaluate("() => window.cladeforgeViewer.readyAt") / 1000)
        stages = page.evaluate("() => window.cladeforgeViewer.stages")
        fetched.append(stages["fetch"] / 1000)
        drawn.append(stages["graph"] / 1000)
        paints.append(page.evaluate(
            "() => (performance.getEntriesByName('first-paint')[0] || {startTime: NaN})"
            ".startTime") / 1000)
        page.close()
    return tuple(statistics.median(v) for v in (paints, fetched, drawn, ready))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "cladeforge-viewer-load")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; median of {args.repeat}")
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        for size in (int(s) for s in args.sizes.split(",") if s):
            run_dir = args.cache_dir / f"viewer-load-v1-{size}"
            archive = run_dir / "archive.sqlite"
            if not archive.exists():
                run_dir.mkdir(parents=True, exist_ok=True)
                started = time.perf_counter()
                build(archive, size)
                print(f"archive of {size:,} candidates built in "
                      f"{time.perf_counter() - started:.1f} s: {archive}", file=sys.stderr)
            server, port = serve(run_dir)
            try:
                body, fetch = endpoint(port, args.repeat)
                paint, fetched, drawn, ready = in_browser(browser, port, args.repeat)
            finally:
                server.should_exit = True
            rows.append((size, body, fetch, paint, fetched, drawn, ready))
        browser.close()
    print(f"{'candidates':>10} {'graph JSON':>11} {'fetch s':>8} {'first paint s':>14} "
          f"{'run+graph read s':>17} {'graph built s':>14} {'interactive s':>14}")
    for size, body, fetch, paint, fetched, drawn, ready in rows:
        print(f"{size:>10,} {body / 1e6:>9.2f}MB {fetch:>8.2f} {paint:>14.2f} {fetched:>17.2f} "
              f"{drawn:>14.2f} {ready:>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
