"""MinHash novelty: estimates close to the true Jaccard similarity, neighbours found."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve._novelty import (
    EmbeddingNoveltyFilter,
    NoveltyIndex,
    shingles,
    signature,
    similarity,
)
from evolve._text import prompt_text

from .conftest import needs_model

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


# -- the embedding measure -----------------------------------------------------------------
def _unit(*xs: float) -> tuple[float, ...]:
    return tuple(xs)


class _Embedder:
    """Vectors chosen per text; an error to raise for some; counts the calls."""

    def __init__(self, vectors: dict[str, tuple[float, ...]],
                 errors: dict[str, Exception] | None = None) -> None:
        self.vectors, self.errors, self.calls = vectors, errors or {}, []

    async def __call__(self, text: str) -> tuple[float, ...]:
        self.calls.append(text)
        if text in self.errors:
            raise self.errors[text]
        return self.vectors[text]


def _prompt_index(*texts: str, invalid: tuple[int, ...] = ()):
    from archive import Status

    from .selection.sel_support import candidate, index_of
    return index_of(*[dataclasses.replace(
        candidate(i + 1, 0.5, status=Status.INVALID if i in invalid else Status.EVALUATED),
        genome={"task_prompts": [t]}) for i, t in enumerate(texts)])


def test_embedding_novelty_is_the_cosine_to_the_nearest_earlier_text() -> None:
    embed = _Embedder({"seed": _unit(1, 0), "bad": _unit(0, 1), "near": _unit(0.99, 0.14),
                       "far": _unit(-1, 0.2), "twin": _unit(2, 0)})
    view = _prompt_index("seed", "bad", invalid=(1,))  # an invalid one is not compared

    async def go():
        f = EmbeddingNoveltyFilter(0.95, view, prompt_text, embed)
        near = await f.check({"task_prompts": ["near"]}, 5)
        far = await f.check({"task_prompts": ["far"]}, 6)
        twin = await f.check({"task_prompts": ["twin"]}, 7)  # same direction as the seed
        return near, far, twin, f.slots
    near, far, twin, slots = asyncio.run(go())
    assert near[0] == 1 and near[1] == pytest.approx(0.99 / math.hypot(0.99, 0.14), rel=1e-6)
    assert far is None and twin == (1, pytest.approx(1.0))
    assert slots == [1, 6] and "bad" not in embed.calls  # the rejected are not kept


def test_embedding_novelty_survives_a_passing_failure_and_stops_on_a_lasting_one() -> None:
    from evolve._errors import LLMError, LLMRejectedError
    passing = LLMError("timeout")
    passing.__cause__ = TimeoutError()
    lasting = LLMRejectedError("the mutator LLM server rejected the request (HTTP 404): "
                               "no such endpoint")
    embed = _Embedder({"seed": _unit(1, 0)}, {"slow": passing, "gone": lasting})
    view = _prompt_index("seed")

    async def go():
        f = EmbeddingNoveltyFilter(0.5, view, prompt_text, embed)
        let_through = await f.check({"task_prompts": ["slow"]}, 3)
        with pytest.raises(LLMRejectedError):
            await f.check({"task_prompts": ["gone"]}, 4)
        return let_through, f.slots
    assert asyncio.run(go()) == (None, [1])  # let through, not kept


@needs_model
def test_a_run_with_embedding_novelty_on_the_embedded_model(tmp_path) -> None:
    """One managed llama.cpp server serves embeddings and chat to both roles; every text
    is embedded in a request of its own (cached for a resume), and children too close to
    an earlier text are recorded near_duplicate with the cosine similarity."""
    import json

    import yaml

    from evolve.cli import main

    from .conftest import read_rows
    llm = {"backend": "llamacpp", "parallel": 2, "context_size": 2048, "max_tokens": 48}
    config = tmp_path / "emb.yaml"
    config.write_text(yaml.safe_dump({
        "runs_dir": str(tmp_path / "runs"), "seed": 1, "llm": {"mutator": llm, "task": llm},
        "fitness": {"benchmark": "arithmetic", "batch_size": 1, "validate_top": 0},
        "evolution": {"genome": "prompt", "population_size": 4},
        "diversity": {"novelty_threshold": 0.6, "novelty_measure": "embedding"},
        "budget": {"candidates": 8}}))
    assert main(["run", str(config), "--name", "emb", "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "emb"
    requests = [json.loads(r) for (r,) in read_rows(run_dir, "SELECT request FROM llm_cache")]
    embedded = [r for r in requests if "input" in r]
    assert len(embedded) >= 4  # the founders' texts and the children's, one per request
    # at 0.6 any two instructions are alike (a prompt and an unrelated sentence: 0.57)
    near = read_rows(run_dir, "SELECT id, mutation FROM candidates "
                              "WHERE failure = 'near_duplicate'")
    assert near, "no child was rejected at a cosine threshold of 0.6"
    for cid, mutation in near:
        assert 0.6 <= json.loads(mutation)["similarity"] <= 1.0 + 1e-6
        assert not read_rows(run_dir, f"SELECT count(*) FROM scores WHERE candidate_id = {cid}"
                             )[0][0]
