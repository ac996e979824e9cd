"""JSON encoding of archive values, shared by every storage.

Values are normalised to what reads back from JSON (tuples become lists, int
keys become strings), so a record looks the same whether it was just written
or loaded from disk. NaN and infinities are refused: JSON cannot hold them.
The encoder also keeps the JSON texts it made, so that the SQLite storage
writes them without encoding the same values again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ._records import CacheEntry, ExampleScore, SplitScore, Usage

_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # stateless, reused
_DECODER = json.JSONDecoder()
_USAGE_TEXT = '{"calls":%d,"cache_hits":%d,"prompt_tokens":%d,"completion_tokens":%d}'


def _c_encoder() -> Any:
    """json's C encoder for ``_ENCODER``'s settings, called directly, or None without the
    ``_json`` accelerator (``JSONEncoder.encode`` builds a new one on every call)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the _json accelerator
        return None
    e = _ENCODER
    return lambda value: make(  # markers: a fresh dict per call, for the circularity check
        {}, e.default, json.encoder.encode_basestring_ascii, e.indent, e.key_separator,
        e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)(value, 0)


_ENCODE_CHUNKS = _c_encoder()


def dumps(value: Any) -> str:
    """Compact JSON text; ``ValueError`` for NaN/inf, ``TypeError`` for non-JSON values."""
    if _ENCODE_CHUNKS is None or isinstance(value, str):
        return _ENCODER.encode(value)
    return "".join(_ENCODE_CHUNKS(value))


def text(value: Any, what: str) -> str:
    """A string that SQLite can store as UTF-8 text."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid unicode text: {exc}") from exc
    return value


def _object_text(value: Any, what: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, not {type(value).__name__}")
    return dumps(dict(value))


class Encoder:
    """Normalises a record's values through JSON and remembers the texts it made:
    ``texts`` per JSON column, ``score_texts`` per split (the examples)."""

    def __init__(self) -> None:
        self.texts: dict[str, str | None] = {}
        self.score_texts: dict[str, str] = {}

    def mapping(self, column: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"{column} must be a mapping, not {type(value).__name__}")
        if _flat(value):  # timings and descriptors: no round trip needed
            self.texts[column] = dumps(value)
            return dict(value)
        encoded = self.texts[column] = dumps(dict(value))
        return _DECODER.raw_decode(encoded)[0]

    def optional(self, column: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            self.texts[column] = None
            return None
        return self.mapping(column, value)

    def usage(self, usage: Usage) -> Usage:
        result = Usage(int(usage.calls), int(usage.cache_hits), int(usage.prompt_tokens),
                       int(usage.completion_tokens))
        self.texts["usage"] = _USAGE_TEXT % (result.calls, result.cache_hits,
                                             result.prompt_tokens, result.completion_tokens)
        return result

    def split_score(self, score: SplitScore) -> SplitScore:
        text(score.split, "split name")
        mean = float(score.mean)
        if not math.isfinite(mean):
            raise ValueError(f"mean score of split {score.split!r} is not finite: {mean}")
        rows = [[str(e.example_id), float(e.score), str(e.output)] for e in score.examples]
        self.score_texts[score.split] = dumps(rows)  # ValueError for a NaN example score
        return SplitScore(score.split, mean, tuple(_example(*row) for row in rows))

    def scores(self, scores: Sequence[SplitScore]) -> dict[str, SplitScore]:
        result: dict[str, SplitScore] = {}
        for score in scores:
            if score.split in result:
                raise ValueError(f"split {score.split!r} given twice")
            result[score.split] = self.split_score(score)
        return result


def _flat(value: Mapping[Any, Any]) -> bool:
    """A mapping of strings to numbers (not bools), which JSON keeps exactly as it is."""
    return all(type(k) is str and type(v) in (float, int) for k, v in value.items())


def _example(example_id: str, score: float, output: str) -> ExampleScore:
    e = object.__new__(ExampleScore)  # without the frozen __init__: a hot path
    e.__dict__.update(example_id=example_id, score=score, output=output)
    return e


def encode_meta(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, JSON text) pairs for ``set_meta`` and ``finish_candidate(meta=...)``."""
    return [(text(key, "meta key"), dumps(value)) for key, value in values.items()]


def encode_cache_entry(entry: CacheEntry) -> tuple[str, str, str]:
    """(key, request JSON, response JSON) of a cache entry; a value given as text is
    taken as the JSON text of an object (checked only for being text)."""
    key, request, response = entry
    return (text(key, "cache key"), _json_object(request, "request"),
            _json_object(response, "response"))


def _json_object(value: Mapping[str, Any] | str, what: str) -> str:
    if isinstance(value, str):
        if not value.lstrip().startswith("{"):
            raise ValueError(f"{what} text is not a JSON object: {value[:40]!r}")
        return text(value, what)
    return _object_text(value, what)
