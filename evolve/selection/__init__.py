"""Parent selection: Promptbreeder's binary tournament and the DGM's archive sampling.

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
from ._dgm import DGMSelector
from ._tournament import TournamentSelector

SELECTORS: Mapping[str, type[Selector]] = MappingProxyType({
    cls.name: cls for cls in (TournamentSelector, DGMSelector)
})


def selector_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the selector called ``name``."""
    return registry_options(SELECTORS, "selector", name)


__all__ = [
    "SELECTORS",
    "DGMSelector",
    "Selection",
    "SelectionError",
    "Selector",
    "TournamentSelector",
    "selector_options",
]
