"""The genome kinds a run can evolve, by config name (``evolution.genome``).

A new genome kind is one wing (a package holding its genome, species, operators
and a ``GenomeKind`` object) and one entry here; see docs/genomes.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType

from ._errors import ConfigError
from ._genome_kind import GenomeKind
from ._prompt_kind import PROMPT
from .code import CODE

GENOME_KINDS: Mapping[str, GenomeKind] = MappingProxyType({k.name: k for k in (PROMPT, CODE)})


def genome_kind(name: str) -> GenomeKind:
    """The genome kind called ``name``; a ``ConfigError`` naming the choices if there is none."""
    try:
        return GENOME_KINDS[name]
    except KeyError:
        close = difflib.get_close_matches(name, GENOME_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"evolution.genome: unknown genome kind {name!r}{hint} (choose "
                          f"from: {', '.join(GENOME_KINDS)})") from None
