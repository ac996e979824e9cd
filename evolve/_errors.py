"""Errors a user can cause, under one root.

The CLI prints a ``CladeforgeError`` as one line (what went wrong and what to
do next) and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CladeforgeError(Exception):
    """Root of the errors a user can cause and fix."""


class ConfigError(CladeforgeError):
    """The run config is wrong: unknown key, wrong type, bad value."""


class ModelFileError(CladeforgeError):
    """The model file for a managed server is missing or unreadable."""


class LLMError(CladeforgeError):
    """An LLM server failed after all retries (unreachable, 5xx, timeouts)."""


class LLMResponseError(LLMError):
    """The server answered, but with something that is not a usable completion."""


class LLMRejectedError(LLMError):
    """The server refused the request itself (HTTP 4xx other than 429)."""


class ServerStartError(CladeforgeError):
    """A managed inference server could not be started or never became healthy."""


class RunStateError(CladeforgeError):
    """A run directory is missing, already exists, or is not a Cladeforge run."""


class SelectionError(CladeforgeError):
    """A selector cannot choose parents (e.g. the population is empty or too small)."""
