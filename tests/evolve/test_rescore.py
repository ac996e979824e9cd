"""Noise-aware selection in a run made by the real command: the best are re-scored on
fresh examples once, and selection can rank by the Wilson lower bound."""

from __future__ import annotations

import json
from pathlib import Path

from ..stub_openai import StubOpenAI
from .conftest import read_rows
from .test_monitor import prompt_run


def train_examples(run_dir: Path) -> dict[int, list[str]]:
    return {cid: [e[0] for e in json.loads(examples)] for cid, examples in read_rows(
        run_dir, "SELECT candidate_id, examples FROM scores WHERE split = 'train'")}


def test_the_best_are_rescored_once_on_fresh_examples(tmp_path: Path) -> None:
    with StubOpenAI() as stub:
        run_dir = prompt_run(tmp_path, stub, "rescored",
                             fitness={"rescore_size": 3, "rescore_top": 2,
                                      "rank_by": "wilson"})
        plain = prompt_run(tmp_path, stub, "plain")
    sizes = {cid: len(ids) for cid, ids in train_examples(run_dir).items()}
    assert set(sizes.values()) <= {2, 5}  # a batch of 2, or the batch and 3 fresh ones
    rescored = [cid for cid, n in sizes.items() if n == 5]
    assert rescored, "no candidate was re-scored"
    for cid in rescored:
        ids = train_examples(run_dir)[cid]
        assert len(set(ids)) == 5  # fresh: none of its own batch again
    assert set(len(ids) for ids in train_examples(plain).values()) == {2}
    means = dict(read_rows(run_dir, "SELECT candidate_id, mean FROM scores "
                                    "WHERE split = 'train'"))
    for cid in rescored:  # the recorded score is the mean over all its examples
        examples = json.loads(read_rows(run_dir, "SELECT examples FROM scores WHERE "
                                                 f"candidate_id = {cid} AND split = 'train'")[0][0])
        assert means[cid] == sum(e[1] for e in examples) / len(examples)
