"""An operator's answer that it cannot apply here: another operator is drawn instead."""

from __future__ import annotations

from ._base import InvalidChild


class NotApplicable(InvalidChild):
    """The operator cannot make a child of this parent in this population (a merge or a
    crossover with no other member to take from, a Lamarckian step with no correct
    working-out to learn from). The engine then draws another of the enabled operators
    (``Engine.make_child``); raised before any LLM call, so no slot is spent on it.

    A subclass of ``InvalidChild``: a caller that does not redraw records an invalid child.
    """
