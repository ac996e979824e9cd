"""The bounded JSON reader for candidate-controlled data."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandboxes import MAX_JSON_DEPTH, UntrustedDataError, untrusted_json
from sandboxes._untrusted import json_depth


@pytest.mark.parametrize("data", [
    pytest.param(b"[" * 200_000 + b"]" * 200_000, id="nested-past-the-recursion-limit"),
    pytest.param(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), id="past-max-depth"),
    pytest.param(b'{"a":' * 100 + b"1" + b"}" * 100, id="nested-objects"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"[1, 2", id="truncated"),
    pytest.param(b'"\\"' * 10_000, id="unclosed-strings"),
])
def test_bad_json_raises_only_untrusted_data_error(data: bytes) -> None:
    with pytest.raises(UntrustedDataError):
        untrusted_json(data)


def test_size_limit() -> None:
    with pytest.raises(UntrustedDataError, match="more than the limit"):
        untrusted_json(b"[" + b"1," * 1000 + b"1]", max_bytes=100)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": ["[" * 500, {"b": "{" * 500}], "c": '\\"[[['})
    assert untrusted_json(text) == json.loads(text)
    assert json_depth(text) == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_valid_json_reads_as_json_loads_and_depth_is_exact(value: object) -> None:
    text = json.dumps(value)
    assert json_depth(text) == _depth(value)
    assert untrusted_json(text.encode()) == json.loads(text)
