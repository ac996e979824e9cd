"""End to end: a code candidate whose output would crash a trusted parser ends with a reason,
and the run finishes its budget, also when it is killed (SIGKILL) during that evaluation and
resumed.

The benchmark is circle packing, whose scorer parses the program's ``circles.json`` on the
host; the scripted mutator (a stub OpenAI server in this process) makes a child that writes
JSON nested 100,000 levels deep (``json.loads`` alone raises ``RecursionError`` on it).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from evolve.cli import main
from tests.stub_openai import Reply, StubOpenAI

from .conftest import ROOT, evolve_cmd, read_rows, status_json

SEARCH = "    r = 0.225 / max(cols, rows)"


def edit(*lines: str) -> str:
    body = "\n".join(f"    {line}" for line in lines)
    return f"packing.py\n<<<<<<< SEARCH\n{SEARCH}\n=======\n{SEARCH}\n{body}\n>>>>>>> REPLACE\n"


DEEP = edit("open('circles.json', 'w').write('[' * 100000 + ']' * 100000)",
            "import os", "os._exit(0)")
DEEP_SLOW = edit("import time", "time.sleep(4)",
                 "open('circles.json', 'w').write('[' * 100000 + ']' * 100000)",
                 "import os", "os._exit(0)")
HARMLESS = edit("r = r * 0.99")


def config(tmp_path: Path, base_url: str, budget: int = 3) -> Path:
    llm = {"backend": "external", "base_url": base_url, "model": "stub"}
    path = tmp_path / "circles.yaml"
    path.write_text(yaml.safe_dump({
        "runs_dir": str(tmp_path / "runs"), "seed": 1,
        "llm": {"mutator": llm, "task": llm},
        "fitness": {"benchmark": "circle_packing", "options": {"wall_seconds": 30},
                    "batch_size": 1, "validate_top": 1},
        "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                      "operators": {"diff_edit": 1.0}},
        "sandbox": {"backend": "process"},
        "budget": {"candidates": budget},
    }))
    return path


def outcome(run_dir: Path) -> dict[int, tuple[str, str, str]]:
    """Candidate id -> (status, reason, the train example's recorded output)."""
    rows = read_rows(run_dir, "SELECT c.id, c.status, coalesce(c.reason, ''), "
                              "coalesce(s.examples, '[]') FROM candidates c LEFT JOIN scores s "
                              "ON s.candidate_id = c.id AND s.split = 'train' ORDER BY c.id")
    return {cid: (status, reason, " ".join(str(e[2]) for e in json.loads(examples)))
            for cid, status, reason, examples in rows}


def assert_deep_child_recorded(run_dir: Path, budget: int) -> None:
    got = outcome(run_dir)
    assert len(got) == budget and all(s in ("evaluated", "failed") for s, _, _ in got.values())
    status, reason, output = got[2]  # the deep child
    assert "circles.json is not acceptable JSON" in output + reason, got[2]
    assert status_json(run_dir)["state"] == "finished"


def test_a_child_writing_json_too_deep_to_parse_is_recorded_and_the_run_finishes(
        tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        stub.script(Reply.ok(DEEP), Reply.ok(HARMLESS))
        assert main(["run", str(config(tmp_path, stub.base_url)), "--name", "c", "--quiet"]) == 0
    assert_deep_child_recorded(tmp_path / "runs" / "c", 3)


def test_a_kill_during_that_evaluation_resumes_and_finishes(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "k"
    with StubOpenAI() as stub:
        stub.script(Reply.ok(DEEP_SLOW), Reply.ok(HARMLESS), Reply.ok(HARMLESS))
        proc = subprocess.Popen(evolve_cmd("run", str(config(tmp_path, stub.base_url)),
                                           "--name", "k", "--quiet"), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the deep child is pending: it is being evaluated
            try:
                if read_rows(run_dir, "SELECT count(*) FROM candidates "
                                      "WHERE id = 2 AND status = 'pending'")[0][0]:
                    break
            except Exception:  # noqa: BLE001 - the archive may not exist yet
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        else:
            raise AssertionError("the deep child never became pending")
        time.sleep(1.0)  # inside its 4 s sleep
        proc.kill()
        proc.wait()
        assert main(["resume", str(run_dir), "--quiet"]) == 0
    assert_deep_child_recorded(run_dir, 3)
