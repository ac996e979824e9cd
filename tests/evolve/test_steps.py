"""The Engine's per-candidate decisions are drawn exactly as numpy would draw them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve._steps import Engine, rng_for


def _engine(weights: list[float]) -> Engine:
    names = [f"op{i}" for i in range(len(weights))]
    probabilities = np.asarray(weights) / sum(weights)
    # only the fields choose_operator reads; the rest are never touched here
    return Engine(storage=None, writer=None, species=None, mutator=None, task=None,  # type: ignore[arg-type]
                  selector=None, operators=dict(zip(names, names, strict=True)),  # type: ignore[arg-type]
                  weights=probabilities, seed=0, batch_size=1, validation_size=None,
                  usage_before={})


def test_rng_for_is_the_documented_stream() -> None:
    for key in [(1,), (2, 0), (2, 12345), (3, 7)]:
        expected = np.random.default_rng(np.random.SeedSequence(42, spawn_key=key))
        assert rng_for(42, *key).integers(1 << 62, size=8).tolist() == \
            expected.integers(1 << 62, size=8).tolist()


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=10),
       seed=st.integers(0, 2**32), slot=st.integers(0, 10**6))
def test_choose_operator_draws_like_numpy_choice(weights: list[float], seed: int,
                                                  slot: int) -> None:
    engine = _engine(weights)
    names = list(engine.operators)
    expected = names[rng_for(seed, 2, slot).choice(len(names), p=engine.weights)]
    assert engine.choose_operator(rng_for(seed, 2, slot)) == expected
