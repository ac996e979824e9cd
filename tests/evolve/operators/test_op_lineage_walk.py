"""The lineage operator walks the line of descent in the index's array of first parents
(``ArchiveIndex.descent``) and finds its elites with numpy: the same elites as walking
the candidates themselves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from archive import Status
from evolve.operators._lineage import elites

from .op_support import candidate, index_of


def elites_by_walking_candidates(view, start, max_depth):
    """The candidates' own first parents, followed oldest to newest (the earlier code)."""
    line, seen = [start], {start.id}
    while (line[-1].parent_ids and line[-1].parent_ids[0] not in seen
           and (max_depth is None or len(line) <= max_depth)):
        pid = line[-1].parent_ids[0]
        if pid not in view:
            break
        seen.add(pid)
        line.append(view.get(pid))
    best, out = float("-inf"), []
    for c in reversed(line):
        if c.fitness is not None and c.fitness > best:
            best = c.fitness
            out.append(c)
    return out


rows = st.lists(st.tuples(
    st.lists(st.integers(-2, 6), max_size=2),  # parents i - k: earlier, itself or later
    st.one_of(st.none(), st.sampled_from([0.0, 0.3, 0.5, 0.9, float("-inf")])),
), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(rows, st.one_of(st.none(), st.integers(1, 12)), st.data())
def test_elites_equal_those_of_walking_the_candidates(rows, max_depth, data):
    view = index_of(*(candidate(i, (f"p{i}",), fitness=fit,
                                parents=tuple(i - k if i - k >= 1 else 100 + i  # 100+: missing
                                              for k in back),
                                status=Status.EVALUATED if fit is not None else Status.FAILED)
                      for i, (back, fit) in enumerate(rows, 1)))
    start = view.get(data.draw(st.integers(1, len(rows))))
    got = elites(view, start, max_depth)
    assert [c.id for c in got] == [c.id for c in elites_by_walking_candidates(
        view, start, max_depth)]
