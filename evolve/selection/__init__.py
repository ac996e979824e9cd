"""Parent selection: Promptbreeder's binary tournament, the DGM's archive sampling,
MAP-Elites, islands, GEPA's per-example Pareto front and HGM's clade productivity.

Every selector is a frozen dataclass whose fields are its options (default and
one-line doc); ``SELECTORS`` maps a config name to the class and
``selector_options`` lists the options for documentation and validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._errors import SelectionError
from .._schema import registry_options
from ._base import Selection, Selector
from ._clade import CladeSelector
from ._dgm import DGMSelector
from ._islands import IslandsSelector
from ._map_elites import MapElitesSelector
from ._pareto import ParetoSelector
from ._tournament import TournamentSelector

SELECTORS: Mapping[str, type[Selector]] = MappingProxyType({
    cls.name: cls for cls in (TournamentSelector, DGMSelector, MapElitesSelector,
                              IslandsSelector, ParetoSelector, CladeSelector)
})


def selector_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the selector called ``name``."""
    return registry_options(SELECTORS, "selector", name)


__all__ = [
    "SELECTORS",
    "CladeSelector",
    "DGMSelector",
    "IslandsSelector",
    "MapElitesSelector",
    "ParetoSelector",
    "Selection",
    "SelectionError",
    "Selector",
    "TournamentSelector",
    "selector_options",
]
