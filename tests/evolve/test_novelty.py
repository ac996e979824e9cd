"""MinHash novelty: estimates close to the true Jaccard similarity, neighbours found."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evolve._novelty import NoveltyIndex, shingles, signature, similarity

WORDS = st.lists(st.sampled_from("add the numbers carefully then check each step twice "
                                 "units sum first last".split()), min_size=3, max_size=40)


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


@settings(max_examples=200, deadline=None)
@given(WORDS, WORDS)
def test_the_estimate_is_within_sampling_error_of_the_jaccard_similarity(a, b) -> None:
    x, y = " ".join(a), " ".join(b)
    # 64 permutations: the estimate's standard deviation is at most 0.0625
    assert abs(similarity(signature(x), signature(y)) - jaccard(x, y)) <= 0.3


def test_identical_texts_are_similar_one_and_spacing_does_not_count() -> None:
    assert similarity(signature("Add the units."), signature("Add  the\nunits.")) == 1.0
    assert similarity(signature("Add the units."), signature("Zebra quilting x")) < 0.2


def test_the_nearest_neighbour_is_found_and_ties_go_to_the_earliest() -> None:
    index = NoveltyIndex()
    assert index.nearest("anything") is None
    base = "Read the problem, add the numbers carefully, then check each step twice."
    index.add(1, base)
    index.add(2, "Completely unrelated text about painting fences in the rain.")
    index.add(3, base)  # the same text again
    key, value = index.nearest(base.replace("twice", "again"))
    assert key == 1 and value > 0.8
    assert index.nearest("Painting fences in the rain, completely unrelated.")[0] == 2
    assert len(index) == 3 and 2 in index


def test_an_index_rebuilt_from_the_same_texts_answers_the_same() -> None:
    texts = [f"Instruction {i}: " + "check the units " * (i % 5 + 1) for i in range(50)]
    first, second = NoveltyIndex(), NoveltyIndex()
    for i, t in enumerate(texts):
        first.add(i, t)
        second.add(i, t)
    for probe in ("Instruction 7: check the units check", "nothing like it at all"):
        assert first.nearest(probe) == second.nearest(probe)


def test_a_run_records_near_duplicates_with_their_neighbour_and_does_not_score_them(
        tmp_path) -> None:
    import json

    from ..stub_openai import StubOpenAI
    from .conftest import read_rows
    from .test_monitor import prompt_run

    with StubOpenAI() as stub:  # the stub echoes each request: the children look alike
        strict = prompt_run(tmp_path, stub, "strict", novelty_threshold=0.3)
        off = prompt_run(tmp_path, stub, "off")
    rows = read_rows(strict, "SELECT id, slot, failure, reason, mutation FROM candidates")
    near = [r for r in rows if r[2] == "near_duplicate"]
    assert near, "no child was rejected at a threshold of 0.3"
    slots = {slot: cid for cid, slot, *_ in rows}
    for cid, _, _, reason, mutation in near:
        record = json.loads(mutation)
        neighbour = slots[record["near_duplicate_of_slot"]]
        assert record["similarity"] >= 0.3 and neighbour < cid
        assert reason.startswith(f"the child is {record['similarity']:.2f} similar")
        assert f"#{neighbour}" in reason
        assert not read_rows(strict, f"SELECT count(*) FROM scores WHERE candidate_id = {cid}"
                             )[0][0]
    assert not read_rows(off, "SELECT count(*) FROM candidates "
                              "WHERE failure = 'near_duplicate'")[0][0]
