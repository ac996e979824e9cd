"""The Engine's per-candidate decisions are drawn exactly as numpy would draw them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive import InMemoryStorage
from evolve._config import config_from_data
from evolve._engine import Engine
from evolve._errors import RunStateError
from evolve._factory import run_streams
from evolve._streams import BLAKE2B, DEFAULT_SCHEME, SEED_SEQUENCE, Streams


def _engine(weights: list[float]) -> Engine:
    names = [f"op{i}" for i in range(len(weights))]
    probabilities = np.asarray(weights) / sum(weights)
    # only the fields choose_operator reads; the rest are never touched here
    return Engine(storage=None, writer=None, species=None, mutator=None, task=None,  # type: ignore[arg-type]
                  selector=None, operators=dict(zip(names, names, strict=True)),  # type: ignore[arg-type]
                  weights=probabilities, streams=Streams(0), batch_size=1, validation_size=None,
                  usage_before={})


GOLDEN_42 = [4371577079637771626, 810304878285724533, 1902502783553213729]
GOLDEN_0 = 0.4444128406673258


def test_seed_sequence_scheme_is_the_documented_stream() -> None:
    streams = Streams(42, SEED_SEQUENCE)
    for key in [(1,), (2, 0), (2, 12345), (3, 7)]:
        expected = np.random.default_rng(np.random.SeedSequence(42, spawn_key=key))
        assert streams(*key).integers(1 << 62, size=8).tolist() == \
            expected.integers(1 << 62, size=8).tolist()


def test_blake2b_streams_never_change_and_differ_by_seed_and_key() -> None:
    # recorded once: a run resumed by any later version must draw exactly these
    assert Streams(42, BLAKE2B)(2, 12345).integers(1 << 62, size=3).tolist() == GOLDEN_42
    assert Streams(0, BLAKE2B)(1).random() == GOLDEN_0
    draws = {(seed, key): tuple(Streams(seed)(*key).integers(1 << 62, size=4).tolist())
             for seed in (0, 1, 12) for key in [(1,), (1, 2), (2, 1), (12,), (1, 2, 0)]}
    assert len(set(draws.values())) == len(draws)  # "1,12" and "11,2" cannot collide
    assert Streams(5)(2, 9).random() == Streams(5)(2, 9).random()  # a new generator per call
    parent = Streams(5)(4)
    children = [g.random() for g in parent.spawn(3)] + [g.random() for g in parent.spawn(2)]
    assert len(set(children)) == 5  # spawned streams are new each time, as numpy's are
    assert [g.random() for g in Streams(5)(4).spawn(5)] == children


def test_the_archive_decides_the_scheme() -> None:
    storage = InMemoryStorage()
    config = config_from_data({"seed": 9})
    assert run_streams(config, storage).scheme == DEFAULT_SCHEME == BLAKE2B
    storage.set_meta({"rng": {"seed": 9, "scheme": SEED_SEQUENCE}})  # a run from before
    assert run_streams(config, storage).scheme == SEED_SEQUENCE
    with pytest.raises(RunStateError, match="unknown random-stream scheme"):
        Streams(1, "mersenne")


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=10),
       seed=st.integers(0, 2**32), slot=st.integers(0, 10**6))
def test_choose_operator_draws_like_numpy_choice(weights: list[float], seed: int,
                                                  slot: int) -> None:
    engine = _engine(weights)
    names = list(engine.operators)
    streams = Streams(seed)
    expected = names[streams(2, slot).choice(len(names), p=engine.weights)]
    assert engine.choose_operator(streams(2, slot)) == expected
