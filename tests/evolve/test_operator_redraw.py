"""An operator that cannot apply to a parent or population (``NotApplicable``: a merge or a
crossover with no other member, a Lamarckian step or a context shuffle with no correct
working-out) gives way to another enabled operator, each tried at most once; when none can
apply, the child is recorded invalid with every reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from evolve._engine import Engine
from evolve._streams import Streams
from evolve.cli import main
from evolve.code.operators import Merge
from evolve.operators import ContextShuffle, Crossover, Lamarckian, NotApplicable
from evolve.selection import Selection
from tests.evolve.species_stub import SpeciesStub
from tests.stub_openai import StubOpenAI

from .conftest import read_rows
from .operators.code_support import code_candidate, code_context, run_code
from .operators.op_support import ScriptedLLM, candidate, context, index_of, run


# -- the operators' answer ----------------------------------------------------------------------
def test_a_merge_or_crossover_in_a_one_member_population_is_not_applicable() -> None:
    llm = ScriptedLLM([])
    ctx = code_context({1: {"solve.py": "x = 1\n"}}, llm, view=index_of(code_candidate(1)))
    with pytest.raises(NotApplicable, match="merge: no other population member"):
        run_code(Merge(), ctx)
    with pytest.raises(NotApplicable, match="crossover: no other population member"):
        run(Crossover(), context(index_of(candidate(1, ("only",))), 1, llm))
    assert llm.calls == []


def test_operators_with_nothing_to_learn_from_are_not_applicable() -> None:
    llm = ScriptedLLM([])
    view = index_of(candidate(1, ("P",)))
    for operator in (Lamarckian(), ContextShuffle()):
        with pytest.raises(NotApplicable, match="no correct working-out"):
            run(operator, context(view, 1, llm, correct_workings=()))
    assert llm.calls == []


# -- the engine redraws -------------------------------------------------------------------------
class _Declines:
    def __init__(self, name: str) -> None:
        self.name = name

    async def mutate(self, ctx: Any) -> Any:
        raise NotApplicable(f"{self.name}: nothing to work with",
                            [{"response": f"asked by {self.name}"}])


class _Makes:
    name = "edit"

    async def mutate(self, ctx: Any) -> Any:
        return SimpleNamespace(exchanges=({"response": "edited"},), extra_parents=())


class _Species(SpeciesStub):
    kind = "code"

    def genome(self, mutation: Any, parent: Any, slot: int) -> dict[str, Any]:
        return {"commit": "child"}


def engine(*operators: Any, weights: list[float]) -> Engine:
    parent = SimpleNamespace(id=1, genome={"commit": "parent"})
    return Engine(storage=SimpleNamespace(get=lambda cid: parent),  # type: ignore[arg-type]
                  writer=None, species=_Species(), mutator=None, task=None,  # type: ignore[arg-type]
                  selector=None, operators={op.name: op for op in operators},  # type: ignore[arg-type]
                  weights=np.asarray(weights) / sum(weights), streams=Streams(0), batch_size=1,
                  validation_size=None, usage_before={})


SELECTION = Selection(parent=1, retire=(4,))


def make_child(e: Engine, slot: int = 1) -> Any:
    return asyncio.run(e.make_child(slot, SELECTION, 1))  # type: ignore[arg-type]


def test_an_operator_that_cannot_apply_gives_way_to_another() -> None:
    e = engine(_Declines("merge"), _Makes(), weights=[1e9, 1.0])
    for slot in range(5):  # merge is drawn first in every slot, and set aside
        child = make_child(e, slot)
        assert child.new.operator == "edit" and child.new.genome == {"commit": "child"}
        assert child.new.mutation["declined"] == {"merge": "merge: nothing to work with"}
        assert "invalid" not in child.new.mutation and child.retire == (4,)
        # what the declining operator asked is kept with the child
        assert [x["response"] for x in child.new.mutation["exchanges"]] == [
            "asked by merge", "edited"]


def test_when_no_operator_can_apply_the_child_is_invalid_with_every_reason() -> None:
    child = make_child(engine(_Declines("merge"), _Declines("crossover"), weights=[1.0, 1.0]))
    invalid = child.new.mutation["invalid"]
    assert invalid.startswith("no enabled operator can apply to #1: ")
    assert "merge: nothing to work with" in invalid
    assert "crossover: nothing to work with" in invalid
    assert set(child.new.mutation["declined"]) == {"merge", "crossover"}
    assert child.new.mutation["failure"] == "not_applicable"
    assert child.new.genome == {"commit": "parent"} and child.retire == ()


def test_a_redraw_never_returns_a_declined_operator_and_follows_the_weights() -> None:
    ops = [_Declines(name) for name in ("a", "b", "c", "d")]
    e = engine(*ops, weights=[4.0, 1.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    drawn = [e.redraw_operator(rng, {"a", "c"}).name for _ in range(20_000)]
    assert set(drawn) == {"b", "d"}
    assert drawn.count("b") / len(drawn) == pytest.approx(0.5, abs=0.02)
    assert e.redraw_operator(rng, {"a", "b", "c", "d"}) is None


# -- end to end: the first child of a code run, whose population is the seed alone ---------------
def code_run(tmp_path: Path, url: str, operators: dict[str, float], name: str) -> Path:
    llm = {"backend": "external", "base_url": url, "model": "stub", "max_retries": 0}
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "runs_dir": str(tmp_path / "runs"), "seed": 1, "llm": {"mutator": llm},
        "fitness": {"benchmark": "circle_packing", "batch_size": 1, "validate_top": 0},
        "evolution": {"genome": "code", "population_size": 2, "generation_size": 1,
                      "operators": operators},
        "sandbox": {"backend": "process"}, "budget": {"candidates": 2}}))
    assert main(["run", str(config), "--name", name, "--quiet"]) == 0
    return tmp_path / "runs" / name


def child_record(run_dir: Path) -> tuple[str, dict[str, Any]]:
    [(operator, mutation)] = read_rows(run_dir, "SELECT operator, mutation FROM candidates "
                                                "WHERE id = 2")
    return operator, json.loads(mutation)


def test_a_merge_drawn_for_the_lone_seed_gives_way_and_the_slot_gets_an_llm_call(
        tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        run_dir = code_run(tmp_path, stub.base_url, {"merge": 1000.0, "diff_edit": 1.0}, "m")
        requests = len(stub.requests)
    operator, mutation = child_record(run_dir)
    assert operator == "diff_edit" and "merge" in mutation["declined"]
    # diff_edit's request (and its repair turn: the stub's answer holds no block); none by merge
    assert requests == len(mutation["exchanges"]) == 2
    assert [ex.get("repair") for ex in mutation["exchanges"]] == [None, 1]


def test_a_run_whose_only_operator_cannot_apply_records_the_child_with_the_reason(
        tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        run_dir = code_run(tmp_path, stub.base_url, {"merge": 1.0}, "only-merge")
        assert stub.requests == []
    operator, mutation = child_record(run_dir)
    assert operator == "merge"
    assert mutation["invalid"] == ("no enabled operator can apply to #1: merge: no other "
                                   "population member (with a different commit) to merge with")
