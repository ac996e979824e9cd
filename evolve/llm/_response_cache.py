"""What the LLM client needs from a response cache (the run's archive writer provides it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ResponseCache(Protocol):
    """A response cache keyed by request hash.

    ``cache_store`` makes the entry durable at once or, at the latest, at the end of
    the current event-loop turn, before any later response can arrive (the run's
    archive writer commits it there, with whatever else the turn wrote), and
    ``cache_get`` finds it from the moment it was stored: a run killed afterwards
    must not pay for that request again.
    Request and response may be given as JSON text (the client passes the bytes
    it sent and received) or as mappings.
    """

    def cache_get(self, key: str) -> Mapping[str, Any] | None: ...

    def cache_store(self, key: str, request: Mapping[str, Any] | str,
                    response: Mapping[str, Any] | str) -> None: ...
