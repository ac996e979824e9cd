"""Every parent selector end to end, with the real components: the real ``evolve`` command,
the real local model (SmolLM2) for prompt runs, real sandboxed programs for code runs.

(a) a tiny prompt run per selector on the embedded model (``evolve run``, its own managed
    llama.cpp server) finishes with the budget's candidates, none pending, every child
    with parents, and what the selector promises (islands: every child records its island;
    tournament: a valid child retires one member; the others retire nothing; parents are
    evaluated candidates);
(b) a code run per selector (circle packing in ``process`` sandboxes, a stub mutator
    scripted with SEARCH/REPLACE answers) finishes with its budget;
(c) a prompt run per selector but tournament (test_interrupts.py kills the default one)
    talks to a llama.cpp server outside it (the embedded model, as an external server), is
    killed with SIGKILL once a few candidates are finished and resumed with ``evolve
    resume``: no candidate lost or duplicated, none pending, the finished ones unchanged,
    the database intact, the run finished.

One config per selector (``SELECTOR_OPTIONS`` on top of conftest's ``TINY_CONFIG``) serves
all three. To keep the file within a few minutes on a 2-core machine, the runs of (a) run
at the same time, as do those of (c) (each a separate ``evolve`` process), each prompt run
scores 1 training example per candidate and validates only the seed, on 1 example, the
mutator's answers are not grammar-constrained (grammar sampling costs about a third of a
run on this CPU; test_e2e.py runs the constrained default), and the llama.cpp servers
use one thread each (llama.cpp's default, one per core, spins against the other runs and
is several times slower on a busy machine).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from evolve.cli import main
from evolve.llm import LlamaCppServer
from evolve.selection import SELECTORS
from tests.stub_openai import Reply, StubOpenAI

from .conftest import (
    ROOT,
    TINY_CONFIG,
    evolve_cmd,
    merge,
    needs_model,
    read_rows,
    status_json,
)

#: the one config of each selector, for every run of this file
SELECTOR_OPTIONS: dict[str, dict[str, Any]] = {
    "tournament": {},
    "dgm": {},
    "map_elites": {"descriptors": ["length", "seed_distance", "solved", "embedding"]},
    "islands": {"islands": 2, "migration_interval": 1},  # inner: tournament (the default)
    "pareto": {},
    "clade": {},
}
BUDGET = TINY_CONFIG["budget"]["candidates"]  # 8
POPULATION = TINY_CONFIG["evolution"]["population_size"]  # 4
#: (c) kills a run once this many candidates are finished (the founders and one child)
KILL_AT = POPULATION + 1
RUN_TIMEOUT = 900.0


def test_every_registered_selector_is_tested() -> None:
    assert set(SELECTOR_OPTIONS) == set(SELECTORS)


#: the prompt operators that constrain the mutator's answer with a grammar
CONSTRAINED = ("zero_order_direct", "first_order_direct", "eda", "eda_rank_index", "lineage",
               "zero_order_hyper", "first_order_hyper", "lamarckian")


def prompt_config(directory: Path, name: str, llm: dict[str, Any]) -> Path:
    """conftest's ``make_config`` (a module fixture cannot take that function-scoped one):
    TINY_CONFIG with the selector's config and the savings described above."""
    data = merge(TINY_CONFIG, {
        "runs_dir": str(directory / "runs"), "llm": llm,
        "fitness": {"batch_size": 1, "validate_top": 0, "validation_size": 1},
        "evolution": {"selector": name, "selector_options": SELECTOR_OPTIONS[name],
                      "initial_population_constrained": False,
                      "operator_options": {op: {"constrained": False} for op in CONSTRAINED}},
    })
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Launched:
    """One ``evolve`` process started in the background."""

    name: str
    run_dir: Path
    proc: subprocess.Popen
    err_path: Path
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")[-4000:]


def launch(name: str, run_dir: Path, *args: str) -> Launched:
    err_path = run_dir.parent.parent / f"{name}-{args[0]}.err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(evolve_cmd(*args, "--quiet"), cwd=ROOT, text=True,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    return Launched(name, run_dir, proc, err_path)


def wait_all(runs: list[Launched], timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for run in runs:
        try:
            run.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.wait()
        run.seconds = time.monotonic() - run.started


def finished_count(run_dir: Path) -> int:
    try:
        return read_rows(run_dir, "SELECT count(*) FROM candidates WHERE status != 'pending'"
                         )[0][0]
    except Exception:  # noqa: BLE001 - the database may not exist yet
        return -1


def kill_all_at(runs: list[Launched], at_least: int, timeout: float = RUN_TIMEOUT) -> None:
    """SIGKILL each run once ``at_least`` of its candidates are finished (as
    test_interrupts' ``wait_until``, for several runs at once); a run that ends first is
    noted, not killed."""
    waiting = list(runs)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for run in list(waiting):
            if run.proc.poll() is not None:
                run.notes["ended_before_kill"] = run.proc.returncode
                waiting.remove(run)
            elif finished_count(run.run_dir) >= at_least:
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait()
                waiting.remove(run)
        time.sleep(0.05)
    for run in waiting:
        run.notes["kill_point_not_reached"] = True
        run.proc.kill()
        run.proc.wait()


def children_rows(run_dir: Path) -> dict[int, dict[str, Any]]:
    rows = read_rows(run_dir, "SELECT id, slot, generation, status, retired_by, descriptors "
                              "FROM candidates ORDER BY id")
    edges = read_rows(run_dir, "SELECT child_id, parent_id FROM edges ORDER BY position")
    out = {r[0]: {"slot": r[1], "generation": r[2], "status": r[3], "retired_by": r[4],
                  "descriptors": json.loads(r[5]), "parents": []} for r in rows}
    for child, parent in edges:
        out[child]["parents"].append(parent)
    return out


def check_lineage(name: str, run_dir: Path, population: int = POPULATION) -> None:
    """Founders have no parents; children have parents; a child's first parent (the one its
    selector chose) is an earlier, evaluated candidate; and the selector's own facts."""
    rows = children_rows(run_dir)
    founders = {cid for cid, r in rows.items() if r["generation"] == 0}
    children = {cid: r for cid, r in rows.items() if r["generation"] > 0}
    assert children, "no child was made"
    assert all(not rows[cid]["parents"] for cid in founders)
    for cid, r in children.items():
        assert r["parents"], f"child #{cid} has no parent"
        first = r["parents"][0]
        assert first < cid and rows[first]["status"] == "evaluated", \
            f"#{cid}'s parent #{first} is {rows[first]['status']}"
    retired_by = [r["retired_by"] for r in rows.values() if r["retired_by"] is not None]
    if name == "islands":
        k = SELECTOR_OPTIONS["islands"]["islands"]
        for cid, r in children.items():
            assert r["descriptors"].get("island") in range(k), (cid, r["descriptors"])
    elif name == "tournament":
        # the winner's evaluated child replaces the loser, only it (a child that grows the
        # population replaces nobody); a child that is not evaluated gave its loser back
        for cid, r in children.items():
            assert retired_by.count(cid) <= (r["status"] == "evaluated"), cid
            assert rows[r["parents"][0]]["retired_by"] != cid, f"#{cid} retired its parent"
        members = [r for r in rows.values()
                   if r["status"] == "evaluated" and r["retired_by"] is None]
        assert len(members) <= population  # growth stops at the population's size
    else:  # selectors that keep the whole archive retire nothing
        assert retired_by == []


# -- (a) a prompt run per selector on the embedded model ----------------------------------------
A_TEST = "test_a_prompt_run_on_the_embedded_model"
C_TEST = "test_c_a_killed_run_resumes_without_losing_anything"


def selected(request: pytest.FixtureRequest, test: str) -> list[str]:
    """The selectors of the collected tests named ``test`` (only those runs are made)."""
    return [item.callspec.params["name"] for item in request.session.items
            if getattr(item, "originalname", None) == test]


@pytest.fixture(scope="module")
def prompt_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, Launched]:
    """The runs of (a), at the same time, each on its own managed server."""
    directory = tmp_path_factory.mktemp("prompt")
    one_thread = {"mutator": {"threads": 1}, "task": {"threads": 1}}
    runs = [launch(name, directory / "runs" / name, "run",
                   str(prompt_config(directory, name, one_thread)), "--name", name)
            for name in selected(request, A_TEST)]
    wait_all(runs)
    return {run.name: run for run in runs}


@needs_model
@pytest.mark.parametrize("name", list(SELECTOR_OPTIONS))
def test_a_prompt_run_on_the_embedded_model(name: str, prompt_runs: dict[str, Launched]
                                            ) -> None:
    run = prompt_runs[name]
    assert run.proc.returncode == 0, f"evolve run exited {run.proc.returncode} after " \
                                     f"{run.seconds:.0f} s:\n{run.stderr()}"
    data = status_json(run.run_dir)
    assert data["state"] == "finished", data["stop_reason"]
    assert data["candidates"] == BUDGET and data["counts"]["pending"] == 0
    check_lineage(name, run.run_dir)


# -- (b) a code run per selector on a stub mutator ----------------------------------------------
def code_edit(line: str) -> str:
    """A SEARCH/REPLACE answer that applies to every circle-packing program this run makes:
    it inserts ``line`` after one the edits never change."""
    return ("<<<<<<< SEARCH\n    circles = []\n=======\n    circles = []\n"
            f"    {line}\n>>>>>>> REPLACE\n")


CODE_ANSWERS = [code_edit("r *= 1.01"),  # valid, a little better
                code_edit("r *= 1.02").replace("circles = []\n===", "no such line\n==="),
                code_edit("raise RuntimeError('boom')"),  # runs and crashes: failed
                code_edit("r *= 1.03"), code_edit("r *= 1.04"), code_edit("r *= 1.05")]
CODE_BUDGET = 5
CODE_CASES = [
    pytest.param("tournament", {}, id="tournament"),  # grows from the one seed
    *[pytest.param(n, SELECTOR_OPTIONS[n], id=n) for n in ("dgm", "map_elites")],
    pytest.param("islands", SELECTOR_OPTIONS["islands"], id="islands"),
    pytest.param("islands", {**SELECTOR_OPTIONS["islands"], "inner": "dgm"},
                 id="islands-inner-dgm"),
    *[pytest.param(n, SELECTOR_OPTIONS[n], id=n) for n in ("pareto", "clade")],
]


@pytest.mark.parametrize(("name", "options"), CODE_CASES)
def test_b_code_run(name: str, options: dict[str, Any], tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        stub.script(*(Reply.ok(a) for a in CODE_ANSWERS))
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "code.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"), "seed": 1, "llm": {"mutator": llm},
            "fitness": {"benchmark": "circle_packing", "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "selector": name,
                          "selector_options": options, "operators": {"diff_edit": 1.0},
                          "operator_options": {"diff_edit": {"repairs": 0}}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": CODE_BUDGET},
        }))
        assert main(["run", str(config), "--name", "code", "--quiet"]) == 0, \
            capsys.readouterr().err
    run_dir = tmp_path / "runs" / "code"
    data = status_json(run_dir)
    assert data["state"] == "finished"
    assert data["candidates"] == CODE_BUDGET, data["stop_reason"]
    assert data["counts"]["pending"] == 0
    # four children took the first four answers, in whatever order they asked
    assert (data["counts"]["evaluated"], data["counts"]["invalid"], data["counts"]["failed"]
            ) == (3, 1, 1)
    check_lineage(name, run_dir, population=2)
    # every valid program records what MAP-Elites reads of it (its record holds a commit)
    for row in children_rows(run_dir).values():
        if row["status"] == "evaluated":
            d = row["descriptors"]
            assert d["length"] > 100 and 0 <= d["seed_distance"] < 1, d
            assert (d["seed_distance"] == 0) is (row["generation"] == 0) and d["embedding"] >= 0
    if name == "tournament":  # from the one seed the population grew to its size, 2
        rows = children_rows(run_dir).values()
        assert sum(r["status"] == "evaluated" and r["retired_by"] is None for r in rows) == 2


# -- (c) killed with SIGKILL and resumed, on a llama.cpp server outside the runs -----------------
KILLED = [n for n in SELECTOR_OPTIONS if n != "tournament"]


def snapshot(run_dir: Path) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in read_rows(
        run_dir, "SELECT id, slot, status, genome, descriptors FROM candidates "
                 "WHERE status != 'pending'")}


@pytest.fixture(scope="module")
def one_thread_llama_url() -> Iterator[str]:
    """conftest's ``llama_base_url`` server (the embedded model, outside the runs, so that a
    killed run does not take it along), with ONE thread and 8 slots. With llama.cpp's
    default, a thread per core, the threads spin at their barriers whenever another process
    takes a core: the runs of (c) took from 80 s to over 9 minutes depending on what else
    the 2-core machine ran; with one thread and 8 slots (5 runs send up to 4 requests each)
    about 100 s. (Its tests carry ``needs_model``, so it is never started without it.)"""
    server = LlamaCppServer(n_parallel=8, n_ctx=2048, threads=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.__aenter__())
    try:
        yield server.base_url
    finally:
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module")
def killed_runs(request: pytest.FixtureRequest, one_thread_llama_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Launched]:
    """The runs of (c), at the same time on one server: each killed at its kill point, then
    all resumed. (Not alongside those of (a): 11 processes on 2 cores took longer than the
    two groups one after the other.)"""
    directory = tmp_path_factory.mktemp("killed")
    external = {"backend": "external", "base_url": one_thread_llama_url, "model": "smollm2"}
    llm = {"mutator": {**external, "max_tokens": 48, "temperature": 0.9},
           "task": {**external, "max_tokens": 48, "temperature": 0.0}}
    runs = [launch(name, directory / "runs" / name, "run",
                   str(prompt_config(directory, name, llm)), "--name", name)
            for name in selected(request, C_TEST)]
    kill_all_at(runs, KILL_AT)
    for run in runs:
        run.notes["finished_at_kill"] = finished_count(run.run_dir)
        run.notes["kept"] = snapshot(run.run_dir)
    resumed = [launch(run.name, run.run_dir, "resume", str(run.run_dir)) for run in runs]
    for run, again in zip(runs, resumed, strict=True):
        again.notes.update(run.notes)
    wait_all(resumed)
    return {run.name: run for run in resumed}


@needs_model
@pytest.mark.parametrize("name", KILLED)
def test_c_a_killed_run_resumes_without_losing_anything(
        name: str, killed_runs: dict[str, Launched]) -> None:
    run = killed_runs[name]
    notes = run.notes
    assert "ended_before_kill" not in notes, \
        f"the run ended (exit {notes.get('ended_before_kill')}) before {KILL_AT} candidates " \
        "were finished"
    assert "kill_point_not_reached" not in notes
    assert KILL_AT <= notes["finished_at_kill"] < BUDGET, \
        "the kill did not interrupt the run: the resume was not tested"
    assert run.proc.returncode == 0, f"evolve resume exited {run.proc.returncode}:\n" \
                                     f"{run.stderr()}"
    slots = [r[0] for r in read_rows(run.run_dir, "SELECT slot FROM candidates ORDER BY id")]
    assert slots == list(range(BUDGET)), "candidates lost or duplicated"
    done = snapshot(run.run_dir)
    assert len(done) == BUDGET, "a pending candidate was not evaluated"
    for cid, row in notes["kept"].items():
        assert done[cid] == row, f"#{cid}, finished before the kill, changed"
    data = status_json(run.run_dir)
    assert data["state"] == "finished" and data["counts"]["pending"] == 0
    assert read_rows(run.run_dir, "PRAGMA integrity_check")[0][0] == "ok"
    check_lineage(name, run.run_dir)
