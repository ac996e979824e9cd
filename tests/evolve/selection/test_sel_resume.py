"""Every selector resumes exactly: a run simulated on a real ``SQLiteStorage``, closed in
the middle of a generation (children committed, some still pending, as a ``kill -9``
leaves it) and reopened from its file with a NEW selector, selects exactly as the same
run going straight through, for prompt- and code-genome records.

The simulation makes the archive's calls the engine makes (``Loop.generational``,
``Engine.make_child`` / ``evaluate`` / ``validate``): founders in one transaction; per
generation, ``select`` on the storage's index with the ``(SELECT, generation)`` stream,
children added pending in one transaction with ``selection.descriptors`` and
``selection.retire`` (an invalid child retires nothing), each finished with per-example
training scores (evaluated, failed or invalid), then the best unvalidated candidate and
the seed get a validation score. What the LLM and the benchmark would decide (genome text,
validity, per-example scores) is drawn from the ``(CHILD, slot)`` and ``(BATCH, slot)``
streams, so both runs make the same children from the same selections.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from archive import (
    AddScores,
    Candidate,
    ExampleScore,
    Failure,
    Finish,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
)
from evolve._errors import SelectionError
from evolve._streams import BATCH, CHILD, INIT, SELECT, Streams
from evolve.selection import SELECTORS, Selection, Selector

SEED = 11
POPULATION = 4
BUDGET = 44
EXAMPLES = [f"ex{i}" for i in range(7)]  # the train split
BATCH_SIZE = 4
WORDS = ["solve", "the", "problem", "step by step", "think", "carefully", "answer",
         "check each digit", "write only the number", "a", "be brief", "x" * 30]
MUTATION_PROMPTS = ["Improve the instruction.", "Make it shorter.", "Add one useful hint.",
                    "Rewrite it for a careful student."]
ALL_DESCRIPTORS = ["length", "seed_distance", "solved", "embedding"]

#: (case id, selector name, options): every registered selector at least once
CASES = [
    ("tournament", "tournament", {}),
    ("dgm", "dgm", {}),
    *[(f"map_elites-{d}", "map_elites", {"descriptors": [d]}) for d in ALL_DESCRIPTORS],
    ("map_elites-all4", "map_elites", {"descriptors": ALL_DESCRIPTORS, "weighting": "rank"}),
    ("islands-tournament", "islands",
     {"islands": 3, "inner": "tournament", "migration_interval": 2}),
    ("islands-dgm", "islands", {"islands": 3, "inner": "dgm", "migration_interval": 2}),
    ("pareto", "pareto", {}),
    ("clade", "clade", {}),
]
#: a code run starts from ONE founder (the benchmark's seed program); these selectors need
#: two population members (two per island for islands of tournaments) and cannot select
NEEDS_TWO = {"tournament", "islands-tournament"}


def test_the_cases_cover_every_registered_selector() -> None:
    assert {name for _, name, _ in CASES} == set(SELECTORS)


def generation_size(name: str, options: Mapping[str, Any]) -> int:
    """As ``evolve._factory.generation_size`` without a configured size."""
    if name == "tournament" or (name == "islands"
                                and options.get("inner", "tournament") == "tournament"):
        return max(1, POPULATION // 2)
    return POPULATION


def make_selector(name: str, options: Mapping[str, Any]) -> Selector:
    return SELECTORS[name](**options)


# -- what the LLM and the benchmark would decide, from the run's streams ---------------------------
def text(rng: np.random.Generator, base: str) -> str:
    """A mutated prompt: some of ``base``'s words kept, some new ones (lengths vary widely,
    so the length bins and the seed distance move)."""
    words = base.split(" ")
    keep = words[: int(rng.integers(0, len(words) + 1))]
    new = [WORDS[int(i)] for i in rng.integers(len(WORDS), size=int(rng.integers(1, 12)))]
    return " ".join(keep + new)[:900] or "solve"


def founder_genomes(kind: str, streams: Streams, founders: int) -> list[dict[str, Any]]:
    rng = streams(INIT)
    if kind == "code":
        return [{"commit": hashlib.sha1(f"seed {i}".encode()).hexdigest(),
                 "mutation_prompt": MUTATION_PROMPTS[int(rng.integers(len(MUTATION_PROMPTS)))]}
                for i in range(founders)]
    return [{"task_prompts": ["Solve the problem." if i == 0 else text(rng, "")],
             "mutation_prompt": MUTATION_PROMPTS[int(rng.integers(len(MUTATION_PROMPTS)))],
             "context": []} for i in range(founders)]


def child_genome(kind: str, parent: Candidate, rng: np.random.Generator,
                 slot: int) -> dict[str, Any]:
    hyper = rng.random() < 0.3  # a hypermutation changes the mutation prompt
    mp = parent.genome["mutation_prompt"]
    if hyper:
        mp = text(rng, mp)
    if kind == "code":
        return {"commit": hashlib.sha1(f"child {slot}".encode()).hexdigest(),
                "mutation_prompt": mp}
    return {"task_prompts": [text(rng, parent.genome["task_prompts"][0])],
            "mutation_prompt": mp, "context": []}


def fingerprint(genome: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(genome, sort_keys=True).encode()).hexdigest()


def train_scores(streams: Streams, slot: int) -> SplitScore:
    """Per-example scores on the slot's training batch (as ``Engine.training_batch``
    draws it): 0, 0.5 or 1 each, so examples are solved and some are led by nobody."""
    picks = streams(BATCH, slot).choice(len(EXAMPLES), size=BATCH_SIZE, replace=False)
    rng = np.random.default_rng([SEED, 99, slot])
    examples = tuple(ExampleScore(EXAMPLES[int(i)], float(rng.choice([0.0, 0.5, 1.0])),
                                  f"out {slot}") for i in picks)
    return SplitScore("train", sum(e.score for e in examples) / len(examples), examples)


# -- the simulated run ---------------------------------------------------------------------------
@dataclass
class SimRun:
    path: Path
    kind: str
    name: str
    options: Mapping[str, Any]
    founders: int
    storage: SQLiteStorage = field(init=False)
    selector: Selector = field(init=False)
    streams: Streams = field(init=False)
    #: per generation: [(parent, retire, descriptors)]; or the SelectionError's message
    selections: list[tuple[int, list[tuple[int, tuple[int, ...], dict[str, float]]]]] = \
        field(default_factory=list)
    stopped: str | None = None
    fresh_checks: int = 0

    def __post_init__(self) -> None:
        self.streams = Streams(SEED)
        self.open()

    def open(self) -> None:
        """Open the archive from its file with a new selector (as a resumed run does)."""
        self.storage = SQLiteStorage(self.path, clock=lambda: 1.0)
        self.selector = make_selector(self.name, self.options)

    def close(self) -> None:
        self.storage.close()

    # Loop.start: pending ones first, then the founders if the archive is empty
    def start(self) -> None:
        self.finish(self.storage.index.candidates(status=Status.PENDING))
        if len(self.storage) == 0:
            news = [NewCandidate(slot=i, kind=self.kind, genome=g,
                                 operator="seed" if i == 0 else "init", generation=0,
                                 mutation={"exchanges": []}, fingerprint=fingerprint(g))
                    for i, g in enumerate(founder_genomes(self.kind, self.streams,
                                                          self.founders))]
            self.finish(self.storage.add_candidates([(n, ()) for n in news]))
        self.validate_round()

    def finish(self, pending: list[Candidate]) -> None:
        """``Engine.evaluate`` for each: invalid children end invalid, some evaluations
        fail, the rest are evaluated with per-example train scores."""
        for c in pending:
            mutation = c.mutation or {}
            if mutation.get("invalid"):
                change = Finish(c.id, Status.INVALID, reason=mutation["invalid"],
                                failure=mutation["failure"])
            elif c.slot % 9 == 5:
                change = Finish(c.id, Status.FAILED, reason="task LLM failed: timeout",
                                timings={"evaluate": 0.5}, failure=Failure.TIMEOUT)
            else:
                change = Finish(c.id, Status.EVALUATED, scores=(train_scores(self.streams,
                                                                              c.slot),),
                                timings={"evaluate": 0.5})
            self.storage.write([change])

    def validate_round(self) -> None:
        """``Loop.validate_round``: the best one without a validation score, and the seed."""
        index = self.storage.index
        picks = [c for c in index.top(1) if "validation" not in c.scores]
        seed = index.by_slot(0)
        if (seed is not None and seed.status is Status.EVALUATED
                and "validation" not in seed.scores and seed not in picks):
            picks.append(seed)
        for c in picks:
            self.storage.write([AddScores(c.id, SplitScore("validation", c.fitness or 0.0))])

    def select(self, generation: int) -> list[Selection]:
        size = min(generation_size(self.name, self.options), BUDGET - len(self.storage))
        index = self.storage.index
        selections = self.selector.select(index, self.streams(SELECT, generation), size)
        # a selector built now, with nothing kept, selects the same (the kept caches
        # follow the change log exactly)
        fresh = make_selector(self.name, self.options).select(
            index, self.streams(SELECT, generation), size)
        assert fresh == selections, f"generation {generation}: kept caches disagree"
        self.fresh_checks += 1
        return selections

    def plan_and_commit(self) -> list[Candidate] | None:
        """One generation's selection and children, committed pending in one transaction
        (``Loop.plan_generation`` + ``commit``); None when no parent can be selected."""
        index = self.storage.index
        generation = index.max_generation() + 1
        try:
            selections = self.select(generation)
        except SelectionError as exc:
            self.stopped = str(exc)
            return None
        self.selections.append((generation, [(s.parent, s.retire, dict(s.descriptors))
                                             for s in selections]))
        first = index.next_slot()
        items = []
        for i, s in enumerate(selections):
            slot = first + i
            parent = index.get(s.parent)
            rng = self.streams(CHILD, slot)
            invalid = rng.random() < 0.2
            genome = (dict(parent.genome) if invalid
                      else child_genome(self.kind, parent, rng, slot))
            mutation: dict[str, Any] = {"exchanges": []}
            if invalid:
                mutation |= {"invalid": "the answer holds no edit",
                             "failure": Failure.NO_BLOCK.value}
            items.append((NewCandidate(
                slot=slot, kind=self.kind, genome=genome, parent_ids=(parent.id,),
                operator="mutate", generation=generation, mutation=mutation,
                descriptors=dict(s.descriptors),
                fingerprint=None if invalid else fingerprint(genome)),
                () if invalid else s.retire))
        return self.storage.add_candidates(items)

    def generation(self, *, kill: bool = False) -> bool:
        """One generation to the end (False: the run stopped); ``kill``: stop after the
        commit with half of the children finished (rounded down; the rest stay pending)."""
        committed = self.plan_and_commit()
        if committed is None:
            return False
        self.finish(committed[:len(committed) // 2] if kill else committed)
        if kill:
            return True
        self.validate_round()
        return len(self.storage) < BUDGET


def run_straight(tmp: Path, kind: str, name: str, options: Mapping[str, Any],
                 founders: int) -> SimRun:
    run = SimRun(tmp / "a.sqlite", kind, name, options, founders)
    run.start()
    while run.generation():
        pass
    return run


def run_killed(tmp: Path, kind: str, name: str, options: Mapping[str, Any], founders: int,
               kill_generation: int) -> SimRun:
    """Killed after committing generation ``kill_generation`` with half its children finished,
    reopened (new storage object, new selector) and resumed as ``Loop.start`` does."""
    run = SimRun(tmp / "b.sqlite", kind, name, options, founders)
    run.start()
    alive = True
    while alive and len(run.selections) < kill_generation - 1:
        alive = run.generation()
    killed = alive and run.generation(kill=True)
    run.close()
    if killed:
        with SQLiteStorage(run.path) as seen:
            pending = seen.index.candidates(status=Status.PENDING)
        assert pending, "the kill left no pending child: the resume would not be tested"
    run.open()
    run.start()
    while len(run.storage) < BUDGET and run.generation():
        pass
    return run


def archive_of(storage: SQLiteStorage) -> list[Candidate]:
    return storage.index.candidates()


def check_records(run: SimRun) -> None:
    """Children carry their selection's descriptors; evaluated ones retired their retirees,
    the others did not (an invalid child never retires; a failed one gave its back)."""
    index = run.storage.index
    children = [c for c in index.candidates() if c.parent_ids]
    planned = [(g, s) for g, sels in run.selections for s in sels]
    assert len(children) == len(planned)
    for c, (g, (parent, retire, descriptors)) in zip(children, planned, strict=True):
        assert (c.generation, c.parent_ids[0], dict(c.descriptors)) == (g, parent, descriptors)
        assert index.get(parent).status is Status.EVALUATED  # only evaluated ones are parents
        for r in retire:
            assert (index.get(r).retired_by == c.id) is (c.status is Status.EVALUATED)
    if run.name == "islands":
        islands = {dict(c.descriptors).get("island") for c in children}
        assert islands <= set(range(run.options["islands"])) and None not in islands
        for c in children:  # its recorded island is its home island: the one it was made in
            assert run.selector.island_of(index, c.id) == c.descriptors["island"]


GENOMES = [("prompt", POPULATION), ("code", 1)]


@pytest.mark.parametrize(("kind", "founders"), GENOMES, ids=[k for k, _ in GENOMES])
@pytest.mark.parametrize(("case", "name", "options"), CASES, ids=[c[0] for c in CASES])
def test_a_run_reopened_mid_generation_selects_exactly_as_one_that_ran_on(
        tmp_path: Path, kind: str, founders: int, case: str, name: str,
        options: dict[str, Any]) -> None:
    a = run_straight(tmp_path, kind, name, options, founders)
    if kind == "code" and case in NEEDS_TWO:
        # the engine would stop with "no parents to select from": one seed cannot hold a
        # tournament; the resumed run stops in the same place
        assert a.selections == [] and a.stopped and len(a.storage) == 1
        b = run_killed(tmp_path, kind, name, options, founders, kill_generation=1)
        assert (b.selections, b.stopped) == ([], a.stopped)
        return
    assert a.stopped is None and len(a.storage) == BUDGET
    assert len(a.selections) >= 8
    statuses = {c.status for c in archive_of(a.storage)}
    assert statuses == {Status.EVALUATED, Status.FAILED, Status.INVALID}
    check_records(a)
    for kill_generation in (2, 5):
        sub = tmp_path / f"kill{kill_generation}"
        sub.mkdir()
        b = run_killed(sub, kind, name, options, founders, kill_generation)
        assert b.stopped == a.stopped
        assert b.selections == a.selections, f"selections differ after a kill in generation " \
                                             f"{kill_generation}"
        assert archive_of(b.storage) == archive_of(a.storage)
        check_records(b)
        b.close()
    a.close()


@pytest.mark.parametrize(("name", "options"), [c[1:] for c in CASES if c[0] in NEEDS_TWO],
                         ids=[c[0] for c in CASES if c[0] in NEEDS_TWO])
def test_code_records_with_several_founders_resume_exactly(
        tmp_path: Path, name: str, options: dict[str, Any]) -> None:
    """Tournaments on code-genome records, from an archive with several founders (one seed
    cannot hold a tournament): the same exact resume."""
    a = run_straight(tmp_path, "code", name, options, POPULATION)
    assert len(a.selections) >= 8
    check_records(a)
    sub = tmp_path / "b"
    sub.mkdir()
    b = run_killed(sub, "code", name, options, POPULATION, kill_generation=4)
    assert (b.selections, b.stopped) == (a.selections, a.stopped)
    assert archive_of(b.storage) == archive_of(a.storage)
    a.close()
    b.close()


def test_a_tournament_population_keeps_its_size_when_children_fail(tmp_path: Path) -> None:
    run = SimRun(tmp_path / "a.sqlite", "prompt", "tournament", {}, POPULATION)
    run.start()
    sizes = [run.storage.index.population_size()]
    while run.generation():
        sizes.append(run.storage.index.population_size())
    failed = run.storage.index.candidates(status=Status.FAILED)
    assert len(failed) >= 3 and run.stopped is None  # children failed; the budget ended it
    assert len(run.storage) == BUDGET
    assert sizes == [POPULATION] * len(sizes), f"population sizes per generation: {sizes}"
    # a failed child's loser is alive again, an evaluated child's stays retired
    assert all(run.storage.index.retirees(c.id) == [] for c in failed)
    evaluated = [c for c in run.storage.index.candidates(status=Status.EVALUATED)
                 if c.parent_ids]
    assert all(len(run.storage.index.retirees(c.id)) == 1 for c in evaluated)
