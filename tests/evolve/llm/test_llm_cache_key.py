"""The response-cache key: stable, order-independent, sensitive to every field."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evolve.llm import canonical_json, request_key

BODY = {"model": "m", "messages": [{"role": "user", "content": "héllo"}], "temperature": 0.5}


def test_key_is_sha256_of_the_canonical_json() -> None:
    expected = ('{"messages":[{"content":"héllo","role":"user"}],"model":"m",'
                '"temperature":0.5}').encode()
    assert canonical_json(BODY) == expected
    assert request_key(BODY) == hashlib.sha256(expected).hexdigest()


def test_known_key_is_stable_across_versions() -> None:
    # a change here invalidates every archive's response cache: do not change it lightly
    assert request_key({"model": "m", "messages": []}) == hashlib.sha256(
        b'{"messages":[],"model":"m"}').hexdigest()


@pytest.mark.parametrize("change", [{"model": "n"}, {"temperature": 0.6}, {"seed": 1},
                                    {"max_tokens": 5}, {"stop": ["\n"]},
                                    {"messages": [{"role": "user", "content": "hello"}]}])
def test_any_change_changes_the_key(change: dict) -> None:
    assert request_key({**BODY, **change}) != request_key(BODY)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_json_numbers_are_rejected(value: float) -> None:
    with pytest.raises(ValueError):
        request_key({"temperature": value})


scalars = (st.none() | st.booleans() | st.integers()
           | st.floats(allow_nan=False, allow_infinity=False) | st.text())
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)


@given(st.dictionaries(st.text(), json_values, max_size=6), st.randoms())
def test_key_does_not_depend_on_key_order(body: dict, rnd) -> None:
    items = list(body.items())
    rnd.shuffle(items)
    assert request_key(dict(items)) == request_key(body)
