"""Budgets stop the run at the first limit reached; the progress line shows the state."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from evolve._budget import Budget
from evolve._config import BudgetConfig
from evolve._progress import ProgressBar
from evolve.cli import main

from ..stub_openai import Reply, StubOpenAI
from .conftest import read_rows, status_json
from .test_roles import llm_config, write_config


def test_first_budget_reached_is_the_reason():
    budget = Budget(BudgetConfig(candidates=10, tokens=1000, wall_time=None))
    budget.start()
    assert budget.exhausted(9, 999) is None
    assert "candidate budget" in budget.exhausted(10, 0)
    assert "token budget" in budget.exhausted(3, 1000)
    assert budget.remaining_candidates(7) == 3 and budget.remaining_candidates(12) == 0


def test_wall_time_adds_up_over_resumes():
    budget = Budget(BudgetConfig(candidates=None, wall_time=5.0), elapsed_before=4.99)
    budget.start()
    time.sleep(0.02)
    assert "wall-time budget" in budget.exhausted(0, 0)
    assert Budget(BudgetConfig(candidates=None)).exhausted(10**9, 10**12) is None


def test_fraction_follows_the_tightest_budget():
    budget = Budget(BudgetConfig(candidates=100, tokens=1000))
    assert budget.fraction(10, 500) == 0.5
    assert budget.fraction(100, 0) == 1.0
    assert Budget(BudgetConfig(candidates=None)).fraction(5, 5) is None


class _Index:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def best(self, split):
        return None


class _Engine:
    def __init__(self, n, tokens, collapse_warning=None):
        self.storage = type("S", (), {"index": _Index(n)})()
        self._tokens = tokens
        self.collapse_warning = collapse_warning

    def tokens(self):
        return self._tokens


def test_progress_line_shows_candidates_tokens_and_eta():
    stream = io.StringIO()
    budget = Budget(BudgetConfig(candidates=20))
    bar = ProgressBar(stream=stream, plain_interval=0)
    bar(_Engine(5, 1500), budget)
    bar(_Engine(10, 3000), budget, force=True)
    first, second = stream.getvalue().splitlines()
    assert "5/20 candidates" in first and "1.5k tokens" in first and "ETA ?" in first
    assert "10/20 candidates" in second and "50%" in second and "ETA " in second
    assert "ETA ?" not in second
    assert "WARNING" not in first + second


def test_the_progress_line_shows_the_collapse_monitors_warning():
    stream = io.StringIO()
    ProgressBar(stream=stream, plain_interval=0)(
        _Engine(5, 10, collapse_warning="pass@1 rose while pass@8 fell"),
        Budget(BudgetConfig(candidates=20)))
    assert stream.getvalue().rstrip().endswith("WARNING pass@1 rose while pass@8 fell")


def test_the_progress_line_shows_the_wall_time_of_the_budget_the_loop_runs_by():
    # the loop's budget has run (6 of 10 s, from an earlier execution): its share shows
    stream = io.StringIO()
    budget = Budget(BudgetConfig(candidates=None, wall_time=10.0), elapsed_before=6.0)
    budget.start()
    ProgressBar(stream=stream, plain_interval=0)(_Engine(3, 0), budget)
    assert "60%" in stream.getvalue() or "61%" in stream.getvalue(), stream.getvalue()


def test_the_wall_time_budget_stops_a_run_in_the_middle_of_slow_scoring(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The task model takes 30 s an answer and the run has 2 s: it stops at 2 s, not after
    the generation, with the budget's reason; the founders it was scoring stay pending and
    a resume with more time (and a quick task model) scores them."""
    with StubOpenAI() as mutator, StubOpenAI(Reply.slow(30.0)) as slow_task:
        llm = llm_config(mutator.base_url)
        llm["task"] = {**llm["mutator"], "base_url": slow_task.base_url, "timeout": 60.0}
        config = write_config(
            tmp_path, mutator.base_url, llm=llm, sandbox={},
            fitness={"benchmark": "arithmetic", "batch_size": 2, "validate_top": 0},
            evolution={"genome": "prompt", "population_size": 3},
            budget={"candidates": 6, "wall_time": 2.0})
        started = time.monotonic()
        assert main(["run", str(config), "--name", "timed", "--quiet"]) == 0
        took = time.monotonic() - started
        capsys.readouterr()
        run_dir = tmp_path / "runs" / "timed"
        status = status_json(run_dir)
        assert took < 25, f"the run went on for {took:.0f} s"  # not the 30 s of an answer
        assert status["state"] == "finished"
        assert re.fullmatch(r"wall-time budget reached \(\d+s/2s\)", status["stop_reason"])
        pending = read_rows(run_dir, "SELECT id FROM candidates WHERE status = 'pending'")
        assert len(pending) == 3  # the founders, written, none scored
        with StubOpenAI() as quick_task:
            assert main(["resume", str(run_dir), "--quiet", "--set", "budget.wall_time=600",
                         "--set", f"llm.task.base_url={quick_task.base_url}"]) == 0
    status = status_json(run_dir)
    assert status["state"] == "finished" and status["candidates"] == 6
    assert read_rows(run_dir, "SELECT count(*) FROM candidates WHERE status = 'pending'") \
        == [(0,)]
