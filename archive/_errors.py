"""The archive's errors, in a module of their own so that every other module of the
package (the index, the planner, the storages) can raise them without importing each
other."""

from __future__ import annotations


class ArchiveError(Exception):
    """Root of the archive's errors."""


class DuplicateSlotError(ArchiveError):
    """A candidate already exists for this slot (resume must reuse it)."""


class UnknownCandidateError(ArchiveError, KeyError):
    """No candidate has this id."""

    def __str__(self) -> str:  # KeyError.__str__ would print the message in quotes
        return str(self.args[0]) if self.args else ""


class InvalidTransitionError(ArchiveError):
    """A status change that the life cycle does not allow (e.g. evaluated -> pending)."""
