"""The one error a user can cause in ``fitness``."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A benchmark cannot be built or loaded: unknown kind, bad option, bad data file.

    The message names the cause and what to do next. ``fitness`` sits below
    ``evolve`` and cannot subclass its error root, so the CLI treats this class
    as a user error too.
    """
