"""Cladeforge's engine: config, run loop, genome kinds, operators, selection, LLM clients.

The public API is re-exported here; modules starting with ``_`` are private.
"""

from ._budget import Budget
from ._config import RunConfig, apply_overrides, config_from_data, load_config
from ._errors import (
    CladeforgeError,
    ConfigError,
    LLMError,
    LLMResponseError,
    ModelFileError,
    RunStateError,
    SelectionError,
    ServerStartError,
)
from ._execution import open_loop
from ._genome import PromptGenome
from ._genome_kind import GenomeKind
from ._genome_kinds import GENOME_KINDS
from ._report import status as run_status
from ._run import Run

__all__ = [
    "GENOME_KINDS",
    "Budget",
    "CladeforgeError",
    "ConfigError",
    "GenomeKind",
    "LLMError",
    "LLMResponseError",
    "ModelFileError",
    "PromptGenome",
    "Run",
    "RunConfig",
    "RunStateError",
    "SelectionError",
    "ServerStartError",
    "apply_overrides",
    "config_from_data",
    "load_config",
    "open_loop",
    "run_status",
]
