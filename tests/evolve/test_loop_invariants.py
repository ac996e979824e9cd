"""Loop invariants that do not depend on what the model says, checked fast against stub
servers (the end-to-end tests run the same loop on the real model)."""

from __future__ import annotations

import pytest

from archive import SQLiteStorage, Status
from evolve import Run, load_config

from ..stub_openai import Reply, StubOpenAI


def external(base_url: str) -> dict:
    return {"backend": "external", "base_url": base_url, "model": "stub", "max_retries": 1}


@pytest.fixture
def stubs():
    with StubOpenAI() as mutator, StubOpenAI(Reply.ok("Working... Answer: 5")) as task:
        yield mutator, task


@pytest.mark.parametrize("mode", ["generational", "steady_state"])
def test_tournament_keeps_the_population_size(make_config, stubs, tmp_path, mode):
    mutator, task = stubs
    config = make_config({
        "llm": {"mutator": external(mutator.base_url), "task": external(task.base_url)},
        "evolution": {"mode": mode, "population_size": 6, "concurrency": 3},
        "budget": {"candidates": 30},
    })
    run = Run.create(load_config(config))
    run.execute()
    run.close()
    with SQLiteStorage(tmp_path / "runs" / "tiny" / "archive.sqlite") as store:
        index = store.index
        everyone = index.candidates()
        assert sorted(c.slot for c in everyone) == list(range(30))
        retirers = [c.retired_by for c in everyone if c.retired_by is not None]
        assert len(retirers) == len(set(retirers)), "a child retired two members"
        for c in everyone:
            if c.retired_by is not None:
                child = index.get(c.retired_by)
                # the loser is replaced by a mutated copy of the tournament's winner
                assert child.status is Status.EVALUATED  # the others gave it back
                assert c.id not in child.parent_ids[:1]
                assert child.id > c.id
        # a child that retired nobody grew a population that lacked members (a founder
        # that was not evaluated): the population ends at its size, whatever failed
        founders = [c for c in everyone if c.operator in ("seed", "init")]
        evaluated = [c for c in everyone if c.status is Status.EVALUATED]
        grown = [c for c in evaluated if c.parent_ids and c.id not in retirers]
        # (in steady state too: children in flight count as joining, so no overshoot)
        assert len(grown) <= 6 - sum(c.status is Status.EVALUATED for c in founders)
        assert len(index.population_ids()) == 6


def test_dgm_never_retires(make_config, stubs, tmp_path):
    mutator, task = stubs
    config = make_config({
        "llm": {"mutator": external(mutator.base_url), "task": external(task.base_url)},
        "evolution": {"selector": "dgm", "population_size": 4},
        "budget": {"candidates": 24},
    })
    run = Run.create(load_config(config))
    run.execute()
    run.close()
    with SQLiteStorage(tmp_path / "runs" / "tiny" / "archive.sqlite") as store:
        assert all(c.retired_by is None for c in store.index.candidates())
        assert len(store) == 24
