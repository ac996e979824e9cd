"""Overhead per evaluation of a trivial program, per sandbox backend, measured in one run.

    python benchmarks/sandbox_overhead.py [--runs 40] [--backends docker-cold,bwrap,...]

Each evaluation is one ``Sandbox.run`` of a one-line Python program that copies
its input file to an output file, which is collected. The overhead is the
evaluation's wall time minus the median time of the same program run directly
on the host with the system Python (plain ``subprocess.run``), printed as p50
and p95 over ``--runs`` evaluations, after ``--warmup`` unmeasured ones.
``docker-cold`` starts a container per evaluation; ``docker-warm`` runs in a
warm pool started before timing. The last line gives the cold/warm ratio at
p50 (issue 3's target: at least 5).
Needs the sandbox image (``evolve sandbox build``) for the docker rows; a
backend that cannot run here is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandboxes import Job, Limits, Sandbox, SandboxError, make_sandbox  # noqa: E402

PROGRAM = "open('out.txt', 'w').write(open('in.txt').read())"
BACKENDS = ("docker-cold", "docker-warm", "bwrap", "process")


def job() -> Job:
    return Job(("python3", "-c", PROGRAM), files={"in.txt": b"hello"}, collect=("out.txt",),
               limits=Limits(memory_mb=256, pids=32, wall_seconds=60))


def build(backend: str) -> Sandbox:
    if backend.startswith("docker"):
        from sandboxes import build_image

        return make_sandbox("docker", image=build_image(),
                            warm=2 if backend == "docker-warm" else 0)
    return make_sandbox(backend)


def native_python() -> str:
    """The host's system Python (like the sandbox image's), else this interpreter."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def native_seconds(runs: int) -> float:
    """Median wall time of the program run directly, without a sandbox."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([native_python(), "-c", PROGRAM], check=True, cwd=_scratch())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _scratch() -> str:
    import tempfile

    path = Path(tempfile.gettempdir()) / "cladeforge-sandbox-overhead"
    path.mkdir(exist_ok=True)
    (path / "in.txt").write_text("hello")
    return str(path)


def measure(sandbox: Sandbox, runs: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        result = sandbox.run(job())
        elapsed = time.perf_counter() - start
        if not result.ok or result.files.get("out.txt") != b"hello":
            raise RuntimeError(f"the trivial program failed: {result.reason} {result.detail} "
                               f"{result.stderr[-300:]!r}")
        if i >= warmup:
            times.append(elapsed)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed evaluations per backend")
    parser.add_argument("--warmup", type=int, default=3, help="untimed evaluations first")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated, from {', '.join(BACKENDS)}")
    args = parser.parse_args()
    base = native_seconds(max(10, args.runs // 2))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"the program run directly ({native_python()}): {base * 1e3:.1f} ms (median), "
          "subtracted below\n")
    print(f"{'backend':<13}{'runs':>5}{'p50 ms':>10}{'p95 ms':>10}{'total p50':>11}")
    p50 = {}
    for backend in args.backends.split(","):
        try:
            with build(backend) as sandbox:
                times = np.array(measure(sandbox, args.runs, args.warmup))
        except (SandboxError, RuntimeError) as exc:
            print(f"{backend:<13} skipped: {exc}")
            continue
        over = times - base
        p50[backend] = float(np.percentile(over, 50))
        print(f"{backend:<13}{len(times):>5}{p50[backend] * 1e3:>10.1f}"
              f"{np.percentile(over, 95) * 1e3:>10.1f}{np.median(times) * 1e3:>11.1f}",
              flush=True)
    if "docker-cold" in p50 and "docker-warm" in p50:
        ratio = p50["docker-cold"] / max(p50["docker-warm"], 1e-6)
        print(f"\ndocker cold / warm at p50: {ratio:.1f}x (target: at least 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
