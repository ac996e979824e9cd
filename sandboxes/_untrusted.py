"""Reading data a candidate controls: bounded, never recursive in Python, one exception type.

Everything a sandboxed candidate writes (stdout, output files, request bodies
sent to the LLM gateway) reaches trusted parsers on the host. A parser that
raises anything but the error its caller expects (``RecursionError`` from
deeply nested JSON, ``MemoryError`` from a huge document) would stop the run
instead of failing the candidate. ``untrusted_json`` checks size and nesting
depth with one linear scan first and raises only :class:`UntrustedDataError`
(a ``ValueError``, so callers that catch ``ValueError`` for "not JSON" keep
working).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "UntrustedDataError", "json_depth", "untrusted_json"]

#: A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_TOKENS = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{}]')

#: Nesting depth allowed in candidate JSON: far below Python's recursion limit.
MAX_JSON_DEPTH = 64


class UntrustedDataError(ValueError):
    """Candidate-controlled data that a trusted parser refuses (too big, too deep, not valid)."""


def untrusted_json(data: bytes | str, *, max_bytes: int = 64 << 20,
                   max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``data`` as JSON, refusing more than ``max_bytes`` or ``max_depth`` nesting levels.

    Raises :class:`UntrustedDataError` (a ``ValueError``) for anything that is not
    acceptable JSON, whatever the reason.
    """
    if len(data) > max_bytes:
        raise UntrustedDataError(f"{len(data)} bytes of JSON, more than the limit of {max_bytes}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text)  # the C decoder stops at the recursion limit
    except RecursionError:
        raise UntrustedDataError("JSON nested deeper than the parser allows") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise UntrustedDataError(f"not valid JSON: {exc}") from None
    if text.count("[") + text.count("{") > max_depth and json_depth(text) > max_depth:
        raise UntrustedDataError(f"JSON nested more than {max_depth} levels deep")
    return value


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text`` outside strings (linear, no recursion).

    Meant for text that is valid JSON (linear then: every string is closed).
    """
    deepest = depth = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
