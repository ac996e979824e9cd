"""No wasted evaluations (issue 14, point 3): a child equal to its parent or to any candidate
already in the archive (or made earlier in its generation) is recorded as a ``duplicate``
naming the candidate it equals, and is not evaluated."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import yaml

from archive import InMemoryStorage, NewCandidate
from evolve._engine import Engine
from evolve._streams import Streams
from evolve.cli import main
from evolve.code._repo import RunRepo
from evolve.selection import Selection
from tests.evolve.species_stub import SpeciesStub
from tests.stub_openai import Reply, StubOpenAI

from .conftest import read_rows, run_evolve, status_json
from .test_code_e2e import BENCHMARK

# -- prompts, end to end ------------------------------------------------------------------------
SAME = "Think carefully, then give the result."


def test_prompt_children_equal_to_a_founder_are_duplicates_and_not_scored(make_config,
                                                                          tmp_path: Path):
    """The mutator always writes the same instruction: the initial units all hold it (founders
    are kept), and every child made later equals the first of them."""
    with StubOpenAI(Reply.ok(SAME)) as mutator, StubOpenAI(Reply.ok("42")) as task:
        external = {"backend": "external", "model": "stub"}
        config = make_config({"llm": {"mutator": {**external, "base_url": mutator.base_url},
                                      "task": {**external, "base_url": task.base_url}},
                              "evolution": {"operators": {"zero_order_direct": 1.0}}})
        run_evolve("run", str(config), "--name", "dup", "--quiet")
    run_dir = tmp_path / "runs" / "dup"
    rows = read_rows(run_dir, "SELECT id, slot, status, reason, failure, mutation, "
                              "(SELECT COUNT(*) FROM scores WHERE candidate_id = id) "
                              "FROM candidates ORDER BY id")
    genomes = {r[0]: r for r in rows}
    first_unit = next(r[0] for r in rows if SAME in json.dumps(read_rows(
        run_dir, f"SELECT genome FROM candidates WHERE id = {r[0]}")))
    children = [r for r in rows if r[0] > 4]  # 4 founders, then the children
    assert children
    for cid, _slot, status, reason, failure, mutation, n_scores in children:
        assert (status, failure, n_scores) == ("invalid", "duplicate", 0), genomes[cid]
        if reason != "the child is an unchanged copy of its parent":  # (the operator saw it)
            assert reason.startswith(f"the child equals #{first_unit}")
            assert json.loads(mutation)["duplicate_of_slot"] == genomes[first_unit][1]
    assert any(r[3].startswith("the child equals #") for r in children)  # seed 3: #7
    assert status_json(run_dir)["children"]["by_reason"] == {"duplicate": len(children)}


# -- the engine: siblings of one generation -----------------------------------------------------
class _Species(SpeciesStub):
    kind = "prompt"

    def genome(self, mutation: Any, parent: Any, slot: int) -> dict[str, Any]:
        return {"text": mutation.text}

    def fingerprint(self, genome: dict[str, Any]) -> str | None:
        return genome["text"].lower()


class _Writes:
    name = "writes"

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    async def mutate(self, ctx: Any) -> Any:
        return SimpleNamespace(text=self.texts.pop(0), exchanges=(), extra_parents=())


def test_siblings_made_in_one_generation_are_compared_before_they_are_written() -> None:
    storage = InMemoryStorage()
    storage.add_candidate(NewCandidate(0, "prompt", {"text": "seed"}, fingerprint="seed"))
    engine = Engine(storage=storage, writer=None, species=_Species(),  # type: ignore[arg-type]
                    mutator=None, task=None, selector=None,  # type: ignore[arg-type]
                    operators={"writes": _Writes("New", "new", "Seed", "other")},
                    weights=np.ones(1), streams=Streams(0), batch_size=1,
                    validation_size=None, usage_before={})
    selection = Selection(parent=1)
    made = [asyncio.run(engine.make_child(slot, selection, 1))  # type: ignore[arg-type]
            for slot in (1, 2, 3, 4)]
    records = [c.new.mutation for c in made]
    assert [r.get("failure") for r in records] == [None, "duplicate", "duplicate", None]
    assert [r.get("duplicate_of_slot") for r in records] == [None, 1, 0, None]
    assert [c.new.fingerprint for c in made] == ["new", None, None, "other"]
    assert made[1].new.genome == {"text": "seed"}  # an invalid child keeps its parent's genome
    # once the generation is written, each duplicate names the candidate it equals by id
    storage.add_candidates([(c.new, c.retire) for c in made])
    by_slot = {c.slot: c for c in storage.index.candidates()}
    assert engine.duplicate_reason(by_slot[2], 1) == (
        f"the child equals #{by_slot[1].id}: not evaluated again")
    assert engine.duplicate_reason(by_slot[3], 0) == "the child equals #1 (its parent): " \
        "not evaluated again"


# -- code: the same files are the same program, whatever their history --------------------------
def test_equal_trees_have_one_fingerprint_whatever_the_commit(tmp_path: Path) -> None:
    with RunRepo.open(tmp_path / "repo", create=True) as repo:
        seed = repo.commit({"main.py": "x = 1\n"}, [], "seed", 0)
        a = repo.commit({"main.py": "x = 2\n"}, [seed], "#1: edit", 1)
        b = repo.commit({"main.py": "x = 2\n"}, [a], "#2: rewrite", 2)
        c = repo.commit({"main.py": "x = 2\n", "extra.py": ""}, [seed], "#3", 3)
        assert a != b and repo.tree(a) == repo.tree(b)
        assert len({repo.tree(seed), repo.tree(a), repo.tree(c)}) == 3


def test_a_rewrite_equal_to_an_earlier_program_is_not_run_again(tmp_path: Path) -> None:
    benchmark = tmp_path / "sort_list"
    shutil.copytree(BENCHMARK, benchmark)
    program = (benchmark / "seed" / "main.py").read_text().replace(
        "    numbers = list(numbers)\n", "    return sorted(numbers)\n")
    answer = f"```python\n{program}```"
    with StubOpenAI() as stub:
        stub.script(Reply.ok(answer), Reply.ok(answer))
        llm = {"backend": "external", "base_url": stub.base_url, "model": "stub"}
        config = tmp_path / "sort.yaml"
        config.write_text(yaml.safe_dump({
            "runs_dir": str(tmp_path / "runs"),
            "llm": {"mutator": llm, "task": llm},
            "fitness": {"benchmark": "directory", "options": {"path": str(benchmark)},
                        "batch_size": 1, "validate_top": 0},
            "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                          "operators": {"full_rewrite": 1.0},
                          "operator_options": {"full_rewrite": {"repairs": 0}}},
            "sandbox": {"backend": "process"},
            "budget": {"candidates": 3},
        }))
        assert main(["run", str(config), "--name", "r", "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "r"
    rows = read_rows(run_dir, "SELECT c.id, c.status, c.failure, c.reason, e.parent_id, "
                              "(SELECT COUNT(*) FROM scores WHERE candidate_id = c.id) "
                              "FROM candidates c LEFT JOIN edges e ON e.child_id = c.id "
                              "ORDER BY c.id")
    assert [r[1] for r in rows] == ["evaluated", "evaluated", "invalid"]
    _, _, failure, reason, parent, scored = rows[2]
    assert failure == "duplicate" and scored == 0
    # from the seed: the engine finds #2; from #2 itself: the rewrite changes nothing
    assert reason.startswith("the child equals #2" if parent == 1
                             else "the rewrite leaves every file unchanged")
