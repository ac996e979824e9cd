"""MAP-Elites: a fixed grid of behaviour descriptors, one elite per cell, parents drawn among
the elites. The grid is a pure function of the archive: kept incrementally, it must equal a
brute-force recomputation and a fresh selector's grid, whatever order candidates arrive in."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Candidate, ExampleScore, SplitScore, Status
from evolve._errors import SelectionError
from evolve._text import SIMHASH_BITS, gram_distance, gram_set, simhash, text_descriptors
from evolve._text import gram_codes as _codes
from evolve.selection import Selection
from evolve.selection._map_elites import (
    MISSING,
    MapElitesSelector,
    genome_text,
    jaccard_distance,
    solved_bin,
)

from .sel_support import candidate, index_of

ALL = ("length", "seed_distance", "solved", "embedding")


def cand(cid: int, fitness: float | None = 0.5, *, text: str = "", parents=(),
         status: Status = Status.EVALUATED, solved=(), code: bool = False,
         descriptors=None) -> Candidate:
    """A candidate with a chosen genome text and per-example training scores."""
    base = candidate(cid, fitness, status=status, parents=parents)
    genome = ({"commit": f"{cid:040x}", "mutation_prompt": text} if code
              else {"task_prompts": [text], "mutation_prompt": "m", "context": []})
    scores = base.scores
    if "train" in scores:
        examples = tuple(ExampleScore(f"ex{i}", 1.0 if i in solved else 0.0)
                         for i in range(6))
        scores = {"train": SplitScore("train", fitness, examples)}
    return dataclasses.replace(base, genome=genome, kind="code" if code else "prompt",
                               scores=scores, descriptors=descriptors or {})


def brute_force(selector: MapElitesSelector, index) -> dict[tuple[int, ...], int]:
    """Every evaluated candidate's cell from scratch; the owner: best score, lowest id."""
    best: dict[tuple[int, ...], tuple[float, int]] = {}
    for c in index.candidates(status=Status.EVALUATED):
        cell = selector.cell(index, c)
        key = (c.fitness, -c.id)
        if cell not in best or key > best[cell]:
            best[cell] = key
    return {cell: -neg for cell, (_, neg) in best.items()}


WORDS = ["a", "bb", "solve", "step by step", "think", "carefully", "answer", "the", "x" * 40]
# one step: a new candidate (parent pick or None for a founder, text, score or None for
# pending, solved examples), or a pending one finished with a score
new_step = st.tuples(st.just("new"), st.one_of(st.none(), st.integers(0, 10**6)),
                     st.lists(st.sampled_from(WORDS), max_size=12),
                     st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0])),
                     st.frozensets(st.integers(0, 5)))
finish_step = st.tuples(st.just("finish"), st.integers(0, 10**6),
                        st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
failed_step = st.tuples(st.just("failed"), st.integers(0, 10**6))
# an evaluated candidate's training score replaced (never in a run; an archive may allow it)
rescore_step = st.tuples(st.just("rescore"), st.integers(0, 10**6),
                         st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))


def apply(index, step) -> None:
    if step[0] == "new":
        _, pick, words, score, solved = step
        ids = [c.id for c in index.candidates()]
        parents = (ids[pick % len(ids)],) if pick is not None and ids else ()
        status = Status.PENDING if score is None else Status.EVALUATED
        index.publish(cand(index.max_id() + 1, score, text=" ".join(words), parents=parents,
                           status=status, solved=solved))
        return
    if step[0] == "rescore":
        done = index.candidates(status=Status.EVALUATED)
        if done:
            c = done[step[1] % len(done)]
            train = c.scores["train"]
            index.publish(dataclasses.replace(c, scores={"train": dataclasses.replace(
                train, mean=step[2])}))
        return
    pending = index.candidates(status=Status.PENDING)
    if not pending:
        return
    c = pending[step[1] % len(pending)]
    if step[0] == "finish":
        done = cand(c.id, step[2], text=c.genome["task_prompts"][0], parents=c.parent_ids)
    else:
        done = dataclasses.replace(c, status=Status.FAILED, reason="boom")
    index.publish(done)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(new_step, new_step, finish_step, failed_step, rescore_step),
                min_size=1, max_size=40),
       st.sampled_from([ALL, ("length", "seed_distance"), ("solved",), ("embedding", "length")]),
       st.integers(0, 99))
def test_kept_grid_is_the_brute_force_grid_and_owners_only_improve(steps, descriptors,
                                                                   seed) -> None:
    index = index_of()
    kept = MapElitesSelector(descriptors=descriptors, edges={"length": [5, 10, 20, 40, 80]},
                             solved_bins=4, embedding_bits=2)
    first_cell: dict[int, tuple[int, ...]] = {}
    before: dict[tuple[int, ...], int] = {}
    for step in steps:
        apply(index, step)
        grid = kept.grid(index)
        assert grid == brute_force(kept, index)
        fresh = dataclasses.replace(kept)  # same options, nothing kept
        assert fresh.grid(index) == grid
        resumed = index_of(*index.candidates())  # the archive read back, as on resume
        assert dataclasses.replace(kept).grid(resumed) == grid
        if step[0] == "rescore":
            before = {}  # a lowered score may lose its cell: no monotony across this step
        for cell, owner in before.items():  # a cell stays owned, and only by a better one
            now = grid[cell]
            old_c, new_c = index.get(owner), index.get(now)
            assert (new_c.fitness, -now) >= (old_c.fitness, -owner)
            if now != owner and now > owner:
                assert new_c.fitness > old_c.fitness  # a later id needs a strictly better score
        for c in index.candidates(status=Status.EVALUATED):  # bins never move
            assert first_cell.setdefault(c.id, kept.cell(index, c)) == kept.cell(index, c)
        before = grid
        if grid:
            picks = kept.select(index, np.random.default_rng(seed), 3)
            assert picks == fresh.select(index, np.random.default_rng(seed), 3)
            assert all(p.parent in grid.values() and p.retire == () for p in picks)
        else:
            with pytest.raises(SelectionError, match="grid is empty"):
                kept.select(index, np.random.default_rng(seed), 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(WORDS), max_size=8),
                          st.sampled_from([0.0, 0.5, 0.5, 1.0])), min_size=1, max_size=30))
def test_adding_candidates_one_by_one_never_replaces_an_owner_by_an_equal_or_worse(rows):
    index = index_of()
    selector = MapElitesSelector(descriptors=("length", "embedding"),
                                 edges={"length": [5, 10, 20]}, embedding_bits=1)
    before: dict[tuple[int, ...], int] = {}
    for words, score in rows:
        c = cand(index.max_id() + 1, score, text=" ".join(words))
        index.publish(c)
        grid = selector.grid(index)
        for cell, owner in before.items():
            if grid[cell] != owner:
                assert grid[cell] == c.id and c.fitness > index.get(owner).fitness
        assert grid == brute_force(selector, index)
        before = grid


def test_only_the_changed_candidates_are_placed(monkeypatch) -> None:
    index = index_of(*(cand(i, i / 100, text="t" * i) for i in range(1, 200)))
    selector = MapElitesSelector()
    selector.select(index, np.random.default_rng(0), 1)
    from evolve.selection import _map_elites
    placed: list[int] = []
    real = _map_elites._Features.cell

    def counting(self, sel, view, c):
        placed.append(c.id)
        return real(self, sel, view, c)

    monkeypatch.setattr(_map_elites._Features, "cell", counting)
    index.publish(cand(200, 0.9, text="new text", parents=(5,)))
    selector.select(index, np.random.default_rng(1), 1)
    assert placed == [200]  # its parent changed too (one more child), but is not placed again


def test_descriptors_of_a_prompt_genome() -> None:
    root = cand(1, 0.5, text="solve the problem step by step")
    same = cand(2, 0.5, text="solve the problem step by step", parents=(1,))
    other = cand(3, 0.5, text="QQQQ", parents=(2,))
    index = index_of(root, same, other)
    selector = MapElitesSelector(descriptors=("length", "seed_distance"))
    assert selector.cell(index, root) == (0, 0)  # 30 characters < 50; distance to itself 0
    assert selector.cell(index, same) == (0, 0)
    assert selector.cell(index, other) == (0, 9)  # nothing shared with the root: distance 1
    long = cand(4, 0.5, text="y" * 100, parents=(1,))
    index.publish(long)
    assert selector.cell(index, long)[0] == 2  # 100 is the edge of bin 2: [100, 200)


def test_text_measures() -> None:
    a, b = np.unique(_codes("abcd")), np.unique(_codes("bcde"))
    assert jaccard_distance(a, a) == 0.0
    assert jaccard_distance(a, b) == pytest.approx(1 - 1 / 3)  # {abc,bcd} vs {bcd,cde}
    assert jaccard_distance(np.unique(_codes("")), np.unique(_codes(""))) == 0.0
    assert jaccard_distance(np.unique(_codes("ab")), np.unique(_codes("abc"))) == 1.0
    text = "Let's think step by step about the answer."
    assert simhash(_codes(text), 8) == simhash(_codes(text), 8)
    clusters = {simhash(_codes(f"prompt number {i} " * (i + 1)), 3) for i in range(40)}
    assert len(clusters) > 1 and clusters <= set(range(8))
    assert simhash(_codes(""), 3) == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12), st.text(max_size=12),
       st.text(alphabet="ab", max_size=40), st.text(alphabet="ab", max_size=40))
def test_the_distance_of_gram_sets_is_the_distance_of_code_arrays(a, b, c, d) -> None:
    """seed_distance reads 3-gram sets of bytes; they give the very numbers of the code
    arrays (short texts, non-ASCII and lone surrogates included)."""
    for x, y in ((a, b), (c, d), (a, a), (c, "")):
        assert len(gram_set(x)) == len(np.unique(_codes(x)))
        assert gram_distance(gram_set(x), gram_set(y)) == jaccard_distance(
            np.unique(_codes(x)), np.unique(_codes(y)))


def test_solved_set_hash_ignores_order_and_unsolved_examples() -> None:
    c1 = cand(1, 0.5, solved={0, 3})
    c2 = dataclasses.replace(c1, scores={"train": SplitScore("train", 0.5, tuple(
        reversed(c1.scores["train"].examples)))})
    c3 = cand(3, 0.5, solved={0, 3, 4})
    assert solved_bin(c1, 1.0, 1 << 30) == solved_bin(c2, 1.0, 1 << 30)
    assert solved_bin(c1, 1.0, 1 << 30) != solved_bin(c3, 1.0, 1 << 30)
    assert 0 <= solved_bin(c3, 1.0, 8) < 8


def test_without_recorded_text_descriptors_a_code_genome_is_its_mutation_prompt() -> None:
    """A code record made outside a run (no recorded descriptors): its text is the
    mutation prompt, its scores are its own."""
    seed = cand(1, 0.2, text="Improve the program.", code=True, solved={0})
    child = cand(2, 0.4, text="Improve the program.", code=True, parents=(1,), solved={0, 1})
    rewrite = cand(3, 0.3, text="Rewrite it from scratch, faster.", code=True, parents=(1,),
                   solved={0})
    index = index_of(seed, child, rewrite)
    assert genome_text(seed.genome) == "Improve the program."
    selector = MapElitesSelector(descriptors=ALL, solved_bins=1 << 20)
    grid = selector.grid(index)
    assert grid == brute_force(selector, index)
    assert len(grid) == 3 and selector.cell(index, child)[:2] == (0, 0)
    same_cell = MapElitesSelector(descriptors=("seed_distance",))
    assert same_cell.grid(index) == {(0,): 2, (9,): 3}  # the child beats the seed in its cell
    assert {s.parent for s in same_cell.select(index, np.random.default_rng(0), 20)} == {2, 3}


def test_recorded_text_descriptors_are_read_as_the_programs() -> None:
    """A code candidate made in a run records its program's length, distance to its
    root's program and SimHash (``text_descriptors``): MAP-Elites bins those, not the
    mutation prompt, and an embedding of fewer bits is the recorded hash's low bits."""
    seed_program = "def pack():\n    return []\n" * 4
    child_program = seed_program + "# a long new helper\n" * 30
    seed = cand(1, 0.2, text="m", code=True,
                descriptors=text_descriptors(seed_program, seed_program))
    child = cand(2, 0.4, text="m", code=True, parents=(1,),
                 descriptors=text_descriptors(child_program, seed_program))
    index = index_of(seed, child)
    selector = MapElitesSelector(descriptors=("length", "seed_distance", "embedding"),
                                 embedding_bits=4)
    cells = {c.id: selector.cell(index, c) for c in (seed, child)}
    assert cells[1] == (2, 0, simhash(_codes(seed_program), 4))  # 104 chars: [100, 200)
    assert cells[2][0] == 4 and cells[2][1] >= 1  # 704 chars: [400, 800); moved away
    assert cells[2][2] == simhash(_codes(child_program), SIMHASH_BITS) & 0b1111
    assert cells[2][2] == simhash(_codes(child_program), 4)
    assert selector.grid(index) == brute_force(selector, index) == {cells[1]: 1, cells[2]: 2}


def test_files_text_is_used_when_a_genome_records_it() -> None:
    assert genome_text({"commit": "c", "files": {"b.py": "B", "a.py": "A"}}) == "a.py\nA\nb.py\nB"
    assert genome_text({"task_prompts": ["x", "y"], "context": ["z"]}) == "x\ny\nz"


def test_user_descriptors_need_edges_and_missing_values_get_their_own_bin() -> None:
    with pytest.raises(ValueError, match="needs its bin edges"):
        MapElitesSelector(descriptors=("runtime",))
    selector = MapElitesSelector(descriptors=("runtime",), edges={"runtime": [1, 10]})
    index = index_of(cand(1, 0.5, descriptors={"runtime": 0.5}),
                     cand(2, 0.6, descriptors={"runtime": 10}),
                     cand(3, 0.7), cand(4, 0.8, descriptors={"runtime": float("nan")}))
    assert selector.grid(index) == {(0,): 1, (2,): 2, (MISSING,): 4}


@pytest.mark.parametrize("options", [
    {"descriptors": ()}, {"descriptors": "length"}, {"descriptors": ("length", "length")},
    {"edges": {"length": [3, 2]}}, {"edges": {"length": [1, float("inf")]}},
    {"edges": {"length": "12"}}, {"solved_bins": 0}, {"embedding_bits": 0},
    {"embedding_bits": 17}, {"weighting": "fitness"}, {"solved_threshold": float("nan")},
])
def test_bad_options_are_refused(options) -> None:
    with pytest.raises(ValueError):
        MapElitesSelector(**options)


def test_options_from_yaml_lists_are_normalised() -> None:
    selector = MapElitesSelector(descriptors=["solved", "length"], edges={"length": [1, 2]})
    assert selector.descriptors == ("solved", "length")
    assert selector.bin_edges("length") == (1.0, 2.0)
    assert selector.bin_edges("seed_distance")[0] == 0.1
    assert MapElitesSelector() == MapElitesSelector(edges={})


def test_empty_or_unevaluated_archive_fails_clearly() -> None:
    selector = MapElitesSelector()
    with pytest.raises(SelectionError, match="grid is empty"):
        selector.select(index_of(), np.random.default_rng(0), 1)
    index = index_of(cand(1, None, status=Status.PENDING), cand(2, None, status=Status.FAILED))
    with pytest.raises(SelectionError, match="grid is empty"):
        selector.select(index, np.random.default_rng(0), 1)
    assert selector.select(index, np.random.default_rng(0), 0) == []


def test_uniform_over_owners_and_rank_weighting() -> None:
    texts = ["a" * 10, "b" * 60, "c" * 150, "d" * 300]  # one length bin each
    index = index_of(*(cand(i + 1, s, text=t) for i, (t, s) in
                       enumerate(zip(texts, [0.1, 0.2, 0.2, 0.9], strict=True))),
                     cand(5, 0.05, text="e" * 12))  # loses bin 0 to #1
    uniform = MapElitesSelector(descriptors=("length",))
    assert sorted(uniform.grid(index).values()) == [1, 2, 3, 4]
    counts = Counter(s.parent for s in uniform.select(index, np.random.default_rng(0), 8000))
    assert set(counts) == {1, 2, 3, 4}
    assert all(abs(counts[i] - 2000) < 200 for i in range(1, 5))
    ranked = MapElitesSelector(descriptors=("length",), weighting="rank")
    counts = Counter(s.parent for s in ranked.select(index, np.random.default_rng(0), 10000))
    want = {1: 1, 2: 2.5, 3: 2.5, 4: 4}  # ranks; #2 and #3 tie
    for cid, rank in want.items():
        assert counts[cid] / 10000 == pytest.approx(rank / 10, abs=0.02)


def test_selections_retire_nothing_and_may_use_busy_parents() -> None:
    index = index_of(cand(1, 0.5))
    assert MapElitesSelector().select(index, np.random.default_rng(0), 2, frozenset({1})) == [
        Selection(parent=1), Selection(parent=1)]


def test_an_owner_whose_score_drops_gives_its_cell_to_the_next_best() -> None:
    index = index_of(cand(1, 0.3, text="same"), cand(2, 0.9, text="same"),
                     cand(3, 0.6, text="same"), cand(4, 0.6, text="same"))
    selector = MapElitesSelector(descriptors=("length",))
    assert selector.grid(index) == {(0,): 2}
    c = index.get(2)
    index.publish(dataclasses.replace(c, scores={"train": dataclasses.replace(
        c.scores["train"], mean=0.1)}))
    assert selector.grid(index) == {(0,): 3}  # 3 and 4 tie: the lower id
    index.publish(dataclasses.replace(index.get(3), status=Status.FAILED, scores={}))
    assert selector.grid(index) == {(0,): 4}
