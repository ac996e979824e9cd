"""Timing of SQLiteStorage writes as the archive grows, and of opening a large archive.

Run on demand (not a test):
    python benchmarks/archive_sqlite.py [--profile heavy|light] [--max 100000] [--dir DIR]

heavy: a ~600-character genome, a ~2 kB mutation record and 10 per-example outputs of
~100 characters (about 5.5 kB per candidate); light: a ~200-character genome, no
mutation record, 5 per-example outputs of ~20 characters (under 1 kB).
Wall and CPU (process) time are both shown: on a busy machine they differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive import (  # noqa: E402
    ArchiveStorage,
    ExampleScore,
    InMemoryStorage,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
    Usage,
    copy_archive,
)

PROFILES = {
    "heavy": ({"task_prompts": ["Solve the problem step by step. " * 10] * 2,
               "mutation_prompt": "Make it better. " * 5},
              {"request": "r" * 1000, "response": "x" * 1000},
              tuple(ExampleScore(f"ex{i}", 0.5, "model output " * 8) for i in range(10))),
    "light": ({"task_prompts": ["Solve the problem step by step. " * 6]}, None,
              tuple(ExampleScore(f"ex{i}", 0.5, "the answer is 42") for i in range(5))),
}


def add_and_finish(s: ArchiveStorage, slot: int, profile: str = "heavy") -> None:
    genome, mutation, examples = PROFILES[profile]
    m = s.index.max_id()
    parents = (m, m // 2) if m > 1 else ((m,) if m else ())
    retire = (m - 5,) if m > 5 and s.index.get(m - 5).alive else ()
    c = s.add_candidate(NewCandidate(
        slot, "prompt", genome, parents, "first_order", slot // 100, mutation,
        Usage(1, 0, 400, 200), {"length": 600.0}), retire)
    s.finish_candidate(c.id, Status.EVALUATED, scores=[SplitScore("train", 0.5, examples)],
                       usage=Usage(10, 2, 4000, 2000), timings={"evaluate": 1.25},
                       meta={"progress": {"last": c.id}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="heavy")
    parser.add_argument("--max", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=2000, help="writes timed per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.db"
        s = SQLiteStorage(path)
        slot = 0
        for size in (1_000, 10_000, 100_000):
            if size > args.max:
                break
            while len(s) < size:
                add_and_finish(s, slot, args.profile)
                slot += 1
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.sample):
                add_and_finish(s, slot, args.profile)
                slot += 1
            per = (time.perf_counter() - start) / args.sample
            per_cpu = (time.process_time() - cpu) / args.sample
            print(f"[{args.profile}] add_candidate + finish_candidate at {size:>7,} candidates: "
                  f"{per * 1e3:.3f} ms wall, {per_cpu * 1e3:.3f} ms CPU per candidate")
        n = len(s)
        s.close()
        size_mb = path.stat().st_size / 1e6
        start, cpu = time.perf_counter(), time.process_time()
        s = SQLiteStorage(path)
        print(f"[{args.profile}] open (load into the index) {n:,} candidates, {size_mb:.0f} MB: "
              f"{time.perf_counter() - start:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
        start = time.perf_counter()
        with InMemoryStorage() as mem:
            copy_archive(s, mem)
        print(f"[{args.profile}] copy_archive of {n:,} candidates into memory: "
              f"{time.perf_counter() - start:.2f} s")
        upto = min(n, 10_000)
        start = time.perf_counter()
        with SQLiteStorage(Path(tmp) / "fork.db") as fork:
            copy_archive(s, fork, upto_id=upto)
        print(f"[{args.profile}] copy_archive of {upto:,} candidates into a new SQLite file: "
              f"{time.perf_counter() - start:.2f} s")
        s.close()


if __name__ == "__main__":
    main()
