"""Smoke tests of ``benchmarks/overhead.py`` and ``benchmarks/viewer_load.py``: they run
and print their tables.

Timings are only printed, never asserted (performance targets live in benchmarks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
