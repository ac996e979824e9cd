"""Output to a reader that stops reading (``evolve show RUN ID | head``) ends quietly: exit
code 0 and nothing on stderr, for every command that prints (tested: show and lineage, with
far more output than a pipe holds, so that writing goes on after the reader has gone)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from archive import NewCandidate, SQLiteStorage
from evolve._config import RunConfig, config_to_data

from .conftest import ROOT, evolve_cmd

PROMPTS = 3000  # task prompts of candidate 1: about 250 kB of 'evolve show'
CHILDREN = 8000  # candidates of the lineage tree: about 360 kB of 'evolve lineage'


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("runs") / "big"
    directory.mkdir()
    storage = SQLiteStorage(directory / "archive.sqlite")
    try:
        config = RunConfig(name="big", runs_dir=str(directory.parent))
        storage.set_meta({"config": config_to_data(config), "state": "finished"})
        prompts = [f"Prompt {i}: " + "think it through, step by step. " * 2
                   for i in range(PROMPTS)]
        storage.add_candidate(NewCandidate(slot=0, kind="prompt", genome={
            "task_prompts": prompts, "mutation_prompt": "Rephrase.", "context": []}))
        storage.add_candidates([(NewCandidate(
            slot=slot, kind="prompt", genome={"task_prompts": [f"child {slot}"],
                                              "mutation_prompt": "m", "context": []},
            parent_ids=(1,), operator="first_order_direct", generation=1), ())
            for slot in range(1, CHILDREN + 1)])
    finally:
        storage.close()
    return directory


def into_head(*args: str) -> tuple[subprocess.CompletedProcess, bytes]:
    """``evolve ARGS | head -n 1``: evolve's exit code and stderr, and what head printed."""
    evolve = subprocess.Popen(evolve_cmd(*args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    head = subprocess.run(["head", "-n", "1"], stdin=evolve.stdout, capture_output=True,
                          timeout=120, check=True)
    assert evolve.stdout is not None
    evolve.stdout.close()  # head has exited: no reader is left on the pipe
    stderr = evolve.stderr.read() if evolve.stderr else b""
    returncode = evolve.wait(timeout=120)
    return subprocess.CompletedProcess(args, returncode, b"", stderr), head.stdout


@pytest.mark.parametrize(("args", "first"), [
    (("show", "{run}", "1"), b"candidate #1 (slot 0, generation 0): pending"),
    (("lineage", "{run}"), b"#1 seed pending"),
])
def test_a_reader_that_stops_early_ends_evolve_quietly(big_run: Path, args: tuple[str, ...],
                                                       first: bytes) -> None:
    result, printed = into_head(*(a.format(run=big_run) for a in args))
    assert printed.startswith(first) and printed.endswith(b"\n")
    assert result.stderr.decode() == ""
    assert result.returncode == 0


def test_the_whole_output_is_far_more_than_a_pipe_holds(big_run: Path) -> None:
    for args in (("show", str(big_run), "1"), ("lineage", str(big_run))):
        out = subprocess.run(evolve_cmd(*args), capture_output=True, cwd=ROOT, check=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120).stdout
        assert len(out) > 4 * 65536
