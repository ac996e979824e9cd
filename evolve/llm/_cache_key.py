"""The response-cache key of a chat request: a hash of its canonical JSON body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "request_key"]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)  # stateless; json.dumps would build one per call


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a request body: sorted keys, no spaces, UTF-8.

    The client sends exactly these bytes, so the cache key is the hash of what
    went over the wire.
    """
    return _CANONICAL.encode(body).encode()


def request_key(body: Mapping[str, Any]) -> str:
    """The sha256 hex digest of ``canonical_json(body)``.

    Stable across processes and Python versions; equal bodies (whatever their
    key order) give equal keys, and any change of model, messages or sampling
    parameter gives a different key.
    """
    return hashlib.sha256(canonical_json(body)).hexdigest()
