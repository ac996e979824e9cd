"""Smoke tests of ``benchmarks/overhead.py``, ``benchmarks/viewer_load.py`` and
``benchmarks/diversity.py``: they run and print their tables.

Timings are only printed, never asserted (performance targets live in benchmarks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.evolve.conftest import read_rows

ROOT = Path(__file__).resolve().parents[1]


def test_overhead_quick_prints_the_tables(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick",
         "--cache-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "stub round trip" in out
    assert "wall ms" in out and "busy ms" in out and "breakdown, ms per candidate" in out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("generational ", "steady_state "))]
    # 2 sizes x 4 rows, once in the main table and once in the breakdown
    assert len(rows) == 16
    for row in rows:
        assert row[1] in ("tournament", "dgm") and row[2] in ("300", "1,000")
        assert all(float(x) >= 0 for x in row[3:])
    made = [int(row[5]) for row in rows[:8]]  # after "open s" and "sel0 s"
    assert made == [50] * 8


def test_viewer_load_prints_its_table(tmp_path: Path) -> None:
    import shutil
    if shutil.which("chromium") is None:  # the browser tests fail in CI without it
        import pytest
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "viewer_load.py"), "--sizes", "300",
         "--repeat", "1", "--cache-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [row] = [line.split() for line in done.stdout.splitlines() if line.lstrip().startswith("300")]
    assert row[1].endswith("MB") and all(float(x) > 0 for x in row[2:])


def test_diversity_keeps_the_finished_runs_of_its_runs_dir(tmp_path: Path) -> None:
    """A tiny benchmarks/diversity.py on the embedded model; called again on the same
    --runs-dir it reads the finished run instead of running it again (same row, no new
    candidate), and a call whose config differs is refused rather than mixed in."""
    command = [sys.executable, str(ROOT / "benchmarks" / "diversity.py"), "--selectors",
               "tournament", "--seeds", "0", "--novelty", "0", "--budget", "3",
               "--runs-dir", str(tmp_path / "runs"), "--set", "evolution.population_size=2",
               "--set", "diversity.probe_size=2", "--set", "diversity.probe_members=2",
               "--set", "fitness.validation_size=4",
               "--set", "fitness.options.validation_size=4"]

    def call(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *extra], cwd=tmp_path, capture_output=True,
                              text=True, timeout=900)

    def candidates() -> int:
        [(count,)] = read_rows(tmp_path / "runs" / "tournament-plain-s0",
                               "SELECT count(*) FROM candidates")
        return count

    first = call()
    assert first.returncode == 0, first.stderr
    [row] = [line for line in first.stdout.splitlines() if line.startswith("tournament")]
    made = candidates()
    assert made >= 3 and "kept from an earlier call" not in first.stderr
    again = call()
    assert again.returncode == 0, again.stderr
    assert "kept from an earlier call" in again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith("tournament")] == [row]
    assert candidates() == made
    other = call("--budget", "4")
    assert other.returncode != 0 and "made with another config" in other.stderr
    assert candidates() == made
