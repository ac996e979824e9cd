"""Cladeforge's engine: config, run loop, genomes, operators, selection, LLM clients.

The public API is re-exported here; modules starting with ``_`` are private.
"""

from ._config import RunConfig, load_config
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
from ._genome import PromptGenome
from ._run import Run

__all__ = [
    "CladeforgeError",
    "ConfigError",
    "LLMError",
    "LLMResponseError",
    "ModelFileError",
    "PromptGenome",
    "Run",
    "RunConfig",
    "RunStateError",
    "SelectionError",
    "ServerStartError",
    "load_config",
]
