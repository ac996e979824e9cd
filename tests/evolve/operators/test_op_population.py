"""Operators that read the population or the lineage: EDA, rank-and-index, lineage,
crossover and context shuffling."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from archive import Status
from evolve._genome import PromptGenome
from evolve.operators import (
    EDA,
    ContextShuffle,
    Crossover,
    EDARankIndex,
    InvalidChild,
    Lineage,
)
from evolve.operators._text import similarity

from .op_support import ScriptedLLM, assert_recorded, candidate, context, index_of, run

ITEM = re.compile(r"^(\d+)\. (.*)$", re.M)


def listed(request: str) -> list[str]:
    items = ITEM.findall(request)
    assert [int(n) for n, _ in items] == list(range(1, len(items) + 1))
    return [text for _, text in items]


def population():
    """Alive evaluated members (some near-duplicates) and members that must never show."""
    return index_of(
        candidate(1, ("Think step by step.",), fitness=0.5),
        candidate(2, ("think step by step!",), fitness=0.9),
        candidate(3, ("Think step-by-step.",), fitness=0.1),
        candidate(4, ("Draw a diagram of the situation first.",), fitness=0.3),
        candidate(5, ("Estimate the answer, then compute it exactly.",), fitness=0.7),
        candidate(6, ("Write down every intermediate result.",), fitness=0.2),
        candidate(7, ("Retired member prompt.",), fitness=1.0, retired_by=8),
        candidate(8, ("Pending member prompt.",), status=Status.PENDING, fitness=None),
        candidate(9, ("Failed member prompt.",), status=Status.FAILED, fitness=None),
    )


HIDDEN = ("Retired member prompt.", "Pending member prompt.", "Failed member prompt.")
STEP_FAMILY = ("Think step by step.", "think step by step!", "Think step-by-step.")


# -- EDA --------------------------------------------------------------------------------------
def test_eda_lists_population_prompts_without_near_duplicates() -> None:
    llm = ScriptedLLM(["7. Check the answer by working backwards."])
    m = run(EDA(), context(population(), 1, llm))
    items = listed(llm.requests()[0])
    assert sum(i in STEP_FAMILY for i in items) == 1
    assert set(items) - set(STEP_FAMILY) == {
        "Draw a diagram of the situation first.",
        "Estimate the answer, then compute it exactly.",
        "Write down every intermediate result."}
    assert not any(h in llm.requests()[0] for h in HIDDEN)
    for a in items:
        for b in items:
            assert a == b or similarity(a, b) < EDA().similarity_threshold
    assert m.genome.task_prompts == ("Check the answer by working backwards.",)
    assert m.genome.mutation_prompt == "Mp."
    assert_recorded(m, llm)


def test_eda_order_is_shuffled_by_the_rng() -> None:
    orders = set()
    for seed in range(12):
        llm = ScriptedLLM(["Something new entirely."])
        run(EDA(), context(population(), 1, llm, seed=seed))
        orders.add(tuple(listed(llm.requests()[0])))
    assert len(orders) > 3


def test_eda_caps_the_list() -> None:
    llm = ScriptedLLM(["Something new entirely."])
    run(EDA(max_items=2), context(population(), 1, llm))
    assert len(listed(llm.requests()[0])) == 2


def test_eda_answer_repeating_a_listed_prompt_is_invalid() -> None:
    llm = ScriptedLLM(["5. Draw a diagram of the situation first."])
    with pytest.raises(InvalidChild, match="repeats a listed one") as info:
        run(EDA(), context(population(), 1, llm))
    assert_recorded(info.value.exchanges, llm)


def test_eda_takes_only_the_first_item_of_a_continued_list() -> None:
    llm = ScriptedLLM(["7. Say the answer aloud.\n8. Another one.\n9. And another."])
    m = run(EDA(), context(population(), 1, llm))
    assert m.genome.task_prompts == ("Say the answer aloud.",)


def test_eda_uses_the_prompts_at_the_mutated_position() -> None:
    view = index_of(candidate(1, ("A first.", "A second.")),
                    candidate(2, ("B first.", "B second.")))
    for seed in range(6):
        llm = ScriptedLLM(["Completely different idea."])
        m = run(EDA(), context(view, 1, llm, seed=seed))
        slot = 0 if m.genome.task_prompts[0] != "A first." else 1
        assert sorted(listed(llm.requests()[0])) == sorted(
            [("A first.", "A second.")[slot], ("B first.", "B second.")[slot]])


# -- EDA rank and index -----------------------------------------------------------------------
def test_rank_index_lists_ascending_fitness_framed_as_descending() -> None:
    view = population()
    llm = ScriptedLLM(["Double-check every carry."])
    m = run(EDARankIndex(), context(view, 1, llm))
    request = llm.requests()[0]
    items = listed(request)
    fitness = {c.genome["task_prompts"][0]: c.fitness for c in view.candidates(alive=True)}
    scores = [fitness[i] for i in items]
    assert scores == sorted(scores)  # worst first, best last
    assert items[-1] == "think step by step!"  # the fittest of the near-duplicates is kept
    assert sum(i in STEP_FAMILY for i in items) == 1
    assert "descending order of score" in request
    assert "Mp." in request
    assert f"item {len(items) + 1}" in request.lower()
    assert m.genome.task_prompts == ("Double-check every carry.",)
    assert_recorded(m, llm)


def test_rank_index_keeps_the_fittest_when_capped() -> None:
    llm = ScriptedLLM(["Double-check every carry."])
    run(EDARankIndex(max_items=2), context(population(), 1, llm))
    assert listed(llm.requests()[0]) == ["Estimate the answer, then compute it exactly.",
                                         "think step by step!"]


# -- lineage ----------------------------------------------------------------------------------
def lineage_archive():
    return index_of(
        candidate(1, ("root",), fitness=0.2),
        candidate(2, ("worse child",), fitness=0.1, parents=(1,)),
        candidate(3, ("better grandchild",), fitness=0.5, parents=(2,)),
        candidate(4, ("side branch",), fitness=0.95, parents=(1,)),
        candidate(5, ("dip",), fitness=0.4, parents=(3, 4)),
        candidate(6, ("best so far",), fitness=0.7, parents=(5,), retired_by=9),
        candidate(7, ("parent",), fitness=0.6, parents=(6,)),
    )


def test_lineage_lists_the_chronological_elites_of_the_parent_line() -> None:
    llm = ScriptedLLM(["Next instruction in the line."])
    m = run(Lineage(), context(lineage_archive(), 7, llm))
    assert listed(llm.requests()[0]) == ["root", "better grandchild", "best so far"]
    assert "ascending order of quality" in llm.requests()[0]
    assert m.genome.task_prompts == ("Next instruction in the line.",)
    assert_recorded(m, llm)


def test_lineage_includes_the_parent_when_it_improved() -> None:
    llm = ScriptedLLM(["Next instruction in the line."])
    run(Lineage(), context(lineage_archive(), 6, llm))
    assert listed(llm.requests()[0]) == ["root", "better grandchild", "best so far"]
    llm = ScriptedLLM(["Next instruction in the line."])
    run(Lineage(), context(lineage_archive(), 1, llm))
    assert listed(llm.requests()[0]) == ["root"]


def test_lineage_keeps_the_most_recent_elites_when_capped() -> None:
    llm = ScriptedLLM(["Next instruction in the line."])
    run(Lineage(max_items=2), context(lineage_archive(), 7, llm))
    assert listed(llm.requests()[0]) == ["better grandchild", "best so far"]


# -- crossover --------------------------------------------------------------------------------
def test_crossover_takes_a_donor_prompt_without_llm() -> None:
    view = population()
    m = run(Crossover(), context(view, 4, ScriptedLLM([])))
    [donor] = m.extra_parents
    assert donor != 4 and view.get(donor).alive and view.get(donor).fitness is not None
    assert m.genome.task_prompts == tuple(view.get(donor).genome["task_prompts"])
    assert m.genome.mutation_prompt == "Mp." and m.exchanges == ()


def test_crossover_donor_is_fitness_proportional() -> None:
    view = index_of(candidate(1, ("parent",), fitness=0.9),
                    candidate(2, ("low",), fitness=0.1),
                    candidate(3, ("high",), fitness=0.3),
                    candidate(4, ("zero",), fitness=0.0),
                    candidate(5, ("dead",), fitness=1.0, retired_by=6))
    n = 4000
    counts = Counter(run(Crossover(), context(view, 1, ScriptedLLM([]), seed=s)).extra_parents[0]
                     for s in range(n))
    assert set(counts) == {2, 3}
    assert counts[3] / n == pytest.approx(0.75, abs=0.03)


def test_crossover_skips_members_with_the_same_or_an_empty_prompt() -> None:
    view = index_of(candidate(1, ("same", "x")), candidate(2, ("Same.", "")),
                    candidate(3, ("  ",)))
    for seed in range(8):  # whichever position is drawn, no donor qualifies
        with pytest.raises(InvalidChild, match="no other population member"):
            run(Crossover(), context(view, 1, ScriptedLLM([]), seed=seed))


def test_crossover_alone_in_population_is_invalid() -> None:
    view = index_of(candidate(1, ("only",)), candidate(2, ("dead",), retired_by=3))
    with pytest.raises(InvalidChild, match="no other population member"):
        run(Crossover(), context(view, 1, ScriptedLLM([])))


def test_crossover_replaces_one_of_two_prompts_with_the_donors_at_that_position() -> None:
    view = index_of(candidate(1, ("P0", "P1")), candidate(2, ("D0", "D1")))
    seen = set()
    for seed in range(10):
        g = run(Crossover(), context(view, 1, ScriptedLLM([]), seed=seed)).genome
        assert g.task_prompts in {("D0", "P1"), ("P0", "D1")}
        seen.add(g.task_prompts)
    assert len(seen) == 2


# -- context shuffling ----------------------------------------------------------------------------
WORKINGS = [("1+1?", "1 plus 1 is 2."), ("2+3?", "2 plus 3 is 5."), ("4+4?", "4 plus 4 is 8.")]


def test_context_shuffle_adds_a_working_under_capacity() -> None:
    view = index_of(candidate(1, ("P",), context=("Q: 9+0?\nA: 9.",)))
    m = run(ContextShuffle(capacity=3), context(view, 1, ScriptedLLM([]),
                                                correct_workings=WORKINGS))
    g = m.genome
    assert g.context[0] == "Q: 9+0?\nA: 9."
    assert len(g.context) == 2
    assert g.context[1] in {f"Q: {q}\nA: {a}" for q, a in WORKINGS}
    assert g.task_prompts == ("P",) and g.mutation_prompt == "Mp." and m.exchanges == ()


def test_context_shuffle_replaces_a_random_item_when_full() -> None:
    full = ("Q: a\nA: 1", "Q: b\nA: 2")
    view = index_of(candidate(1, ("P",), context=full))
    replaced = set()
    for seed in range(20):
        g = run(ContextShuffle(capacity=2),
                context(view, 1, ScriptedLLM([]), seed=seed, correct_workings=WORKINGS)).genome
        assert len(g.context) == 2
        kept = [c for c in g.context if c in full]
        assert len(kept) == 1
        replaced.add(next(c for c in full if c not in kept))
    assert replaced == set(full)


def test_context_shuffle_never_adds_an_item_already_present() -> None:
    present = ("Q: 1+1?\nA: 1 plus 1 is 2.",)
    view = index_of(candidate(1, ("P",), context=present))
    g = run(ContextShuffle(), context(view, 1, ScriptedLLM([]),
                                      correct_workings=WORKINGS[:2])).genome
    assert g.context == (*present, "Q: 2+3?\nA: 2 plus 3 is 5.")
    with pytest.raises(InvalidChild, match="not already in its context"):
        run(ContextShuffle(), context(view, 1, ScriptedLLM([]),
                                      correct_workings=WORKINGS[:1]))


def test_context_shuffle_without_workings_is_invalid() -> None:
    view = index_of(candidate(1, ("P",)))
    with pytest.raises(InvalidChild):
        run(ContextShuffle(), context(view, 1, ScriptedLLM([]), correct_workings=()))


def test_genome_round_trips_through_the_archive_format() -> None:
    view = index_of(candidate(1, ("P",)))
    g = run(ContextShuffle(), context(view, 1, ScriptedLLM([]),
                                      correct_workings=WORKINGS)).genome
    assert PromptGenome.from_dict(g.to_dict()) == g
