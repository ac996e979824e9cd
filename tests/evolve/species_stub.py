"""The part of ``Species`` that ``Engine.make_child`` calls, for engine tests that give
their own genomes and fingerprints (a real species needs a benchmark and a model)."""

from __future__ import annotations

from typing import Any


class SpeciesStub:
    kind = "code"

    def context(self, parent: Any, rng: Any) -> Any:
        return None

    def invalid_genome(self, parent: Any) -> dict[str, Any]:
        return dict(parent.genome)

    def fingerprint(self, genome: Any) -> str | None:
        return None

    def text_descriptors(self, genome: Any, parent: Any) -> dict[str, float]:
        return {}
