"""Nothing is lost: runs killed with SIGKILL (several times, at different points) or
stopped with Ctrl-C resume with every candidate kept, none duplicated, pending ones
re-evaluated, and no LLM request paid twice.

The run talks to a real llama.cpp server (SmolLM2) in this test process through a
recording proxy, so a killed run does not take the server with it and the test
sees every request the server completed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from evolve.llm import request_key

from ..recording_proxy import RecordingProxy
from .conftest import ROOT, evolve_cmd, needs_model, read_rows, run_evolve, status_json

pytestmark = [needs_model]

BUDGET = 12


def external_config(make_config, base_url: str, name: str) -> Path:
    llm = {"backend": "external", "base_url": base_url, "model": "smollm2"}
    return make_config({
        "llm": {"mutator": {**llm, "max_tokens": 48, "temperature": 0.9},
                "task": {**llm, "max_tokens": 48, "temperature": 0.0}},
        "budget": {"candidates": BUDGET},
    }, name=name)


def wait_until(run_dir: Path, sql: str, at_least: int, proc: subprocess.Popen,
               timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point: {proc.stderr.read()}")
        try:
            if read_rows(run_dir, sql)[0][0] >= at_least:
                return
        except Exception:  # noqa: BLE001 - the database may not exist yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"kill point not reached: {sql} >= {at_least}")


def listen_to_ctrl_c() -> None:
    """In the run's process before it starts: SIGINT back to its default. A shell starts
    background jobs with SIGINT ignored, and children inherit that: run so (as ``cmd &``
    in a script), the test process would pass it on and the run would never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snapshot(run_dir: Path) -> tuple[set[str], dict[int, tuple]]:
    keys = {r[0] for r in read_rows(run_dir, "SELECT key FROM llm_cache")}
    done = {r[0]: r[1:] for r in read_rows(
        run_dir, "SELECT id, slot, status, genome FROM candidates WHERE status != 'pending'")}
    return keys, done


def test_sigkill_at_several_points_loses_and_repays_nothing(make_config, llama_base_url, tmp_path):
    run_dir = tmp_path / "runs" / "killed"
    kill_points = [
        # during the founders' mutations: responses cached, no candidate written yet
        ("SELECT count(*) FROM llm_cache", 2),
        # during an evaluation: candidates pending
        ("SELECT count(*) FROM candidates WHERE status != 'pending'", 2),
        # in a later generation
        ("SELECT count(*) FROM candidates WHERE status != 'pending'", 7),
    ]
    with RecordingProxy(llama_base_url) as proxy:
        config = external_config(make_config, proxy.base_url, "killed")
        cached_before: set[str] = set()
        kept: dict[int, tuple] = {}
        pending_seen = False
        for n, (sql, at_least) in enumerate(kill_points):
            args = (["run", str(config), "--name", "killed"] if n == 0
                    else ["resume", str(run_dir)])
            proc = subprocess.Popen(evolve_cmd(*args, "--quiet"), cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_until(run_dir, sql, at_least, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            paid = {request_key(body) for body in proxy.take()}
            assert not paid & cached_before, "a cached request was sent to the server again"
            cached_before, done = snapshot(run_dir)
            for cid, row in kept.items():
                assert done[cid] == row, "a finished candidate changed after a kill"
            kept = done
            pending_seen |= bool(read_rows(
                run_dir, "SELECT count(*) FROM candidates WHERE status = 'pending'")[0][0])

        run_evolve("resume", str(run_dir), "--quiet")
        paid = {request_key(body) for body in proxy.take()}
        assert not paid & cached_before

    assert pending_seen, "no kill hit a pending candidate; the test did not test resume"
    slots = [r[0] for r in read_rows(run_dir, "SELECT slot FROM candidates ORDER BY id")]
    assert slots == list(range(BUDGET)), "candidates lost or duplicated"
    _, done = snapshot(run_dir)
    assert len(done) == BUDGET, "a pending candidate was not re-evaluated"
    for cid, row in kept.items():
        assert done[cid] == row
    data = status_json(run_dir)
    assert data["state"] == "finished" and data["counts"]["pending"] == 0
    assert read_rows(run_dir, "PRAGMA integrity_check")[0][0] == "ok"


def test_ctrl_c_stops_cleanly_and_resume_finishes(make_config, llama_base_url, tmp_path):
    run_dir = tmp_path / "runs" / "interrupted"
    config = external_config(make_config, llama_base_url, "interrupted")
    proc = subprocess.Popen(evolve_cmd("run", str(config), "--name", "interrupted"),
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=listen_to_ctrl_c)
    wait_until(run_dir, "SELECT count(*) FROM candidates WHERE status != 'pending'", 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "evolve resume" in err and "Traceback" not in err
    data = status_json(run_dir)
    assert data["state"] == "stopped" and "Ctrl-C" in data["stop_reason"]

    run_evolve("resume", str(run_dir), "--quiet")
    data = status_json(run_dir)
    assert data["state"] == "finished" and data["candidates"] == BUDGET
    assert data["counts"]["pending"] == 0


def test_status_of_a_killed_run_says_interrupted(make_config, llama_base_url, tmp_path):
    run_dir = tmp_path / "runs" / "dead"
    config = external_config(make_config, llama_base_url, "dead")
    proc = subprocess.Popen(evolve_cmd("run", str(config), "--name", "dead", "--quiet"),
                            cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(run_dir, "SELECT count(*) FROM candidates", 1, proc)
    assert status_json(run_dir)["state"] == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert status_json(run_dir)["state"] == "interrupted"
