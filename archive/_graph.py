"""The lineage graph: a networkx view of the archive for lineage questions and exports.

Nodes are candidate ids, edges go parent -> child. Every candidate is a node,
whatever its status, and retired candidates stay, so a lineage never breaks.
The view is a snapshot: build a new one to see later candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike
from typing import IO, Any

import networkx as nx

from ._errors import UnknownCandidateError
from ._index import ArchiveIndex
from ._storage import ArchiveStorage

_DOT_COLOURS = {"evaluated": "black", "pending": "gray50", "failed": "red3",
                "invalid": "darkorange3"}


def _dot_quote(value: str) -> str:
    """A DOT double-quoted string holding ``value`` (line breaks become centred breaks)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _one_line(value: object) -> str:
    return str(value).replace("\r", "\\r").replace("\n", "\\n")


def _score_text(fitness: float | None) -> str:
    return "-" if fitness is None else f"{fitness:.4g}"


class LineageGraph:
    """Lineage questions (ancestors, clades, depth) and exports (JSON, GraphML, DOT, text)."""

    def __init__(self, graph: nx.DiGraph) -> None:
        self.graph = graph

    @classmethod
    def from_index(cls, index: ArchiveIndex) -> LineageGraph:
        graph = nx.DiGraph()
        for c in index.candidates():
            graph.add_node(c.id, operator=c.operator, generation=c.generation,
                           status=str(c.status.value), fitness=c.fitness, alive=c.alive,
                           slot=c.slot, kind=c.kind)
            graph.add_edges_from((pid, c.id) for pid in c.parent_ids)
        return cls(graph)

    @classmethod
    def from_storage(cls, storage: ArchiveStorage) -> LineageGraph:
        return cls.from_index(storage.index)

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __contains__(self, candidate_id: object) -> bool:
        return candidate_id in self.graph

    def _check(self, candidate_id: int) -> None:
        if candidate_id not in self.graph:
            raise UnknownCandidateError(f"no candidate with id {candidate_id} in the graph")

    # -- lineage questions ----------------------------------------------------------------
    def parents(self, candidate_id: int) -> list[int]:
        self._check(candidate_id)
        return sorted(self.graph.predecessors(candidate_id))

    def children(self, candidate_id: int) -> list[int]:
        self._check(candidate_id)
        return sorted(self.graph.successors(candidate_id))

    def ancestors(self, candidate_id: int) -> set[int]:
        self._check(candidate_id)
        return set(nx.ancestors(self.graph, candidate_id))

    def descendants(self, candidate_id: int) -> set[int]:
        self._check(candidate_id)
        return set(nx.descendants(self.graph, candidate_id))

    def clade(self, candidate_id: int) -> set[int]:
        """The candidate and all its descendants."""
        return self.descendants(candidate_id) | {candidate_id}

    def depth(self, candidate_id: int) -> int:
        """Length of the longest parent chain back to a root (roots have depth 0)."""
        lineage = self.lineage(candidate_id)  # topological: parents come first
        depth: dict[int, int] = {}
        for node in lineage:
            depth[node] = 1 + max((depth[p] for p in self.graph.predecessors(node)), default=-1)
        return depth[candidate_id]

    def roots(self) -> list[int]:
        """Candidates without parents (seeds), ascending."""
        return sorted(n for n, d in self.graph.in_degree() if d == 0)

    def lineage(self, candidate_id: int) -> list[int]:
        """The ancestors in topological order (smallest id first among equals), then the id."""
        sub = self.graph.subgraph(self.ancestors(candidate_id) | {candidate_id})
        return list(nx.lexicographical_topological_sort(sub))

    def ancestry(self, candidate_id: int) -> LineageGraph:
        """A new graph of the candidate and its ancestors only (for exports of one lineage)."""
        return LineageGraph(self.graph.subgraph(self.lineage(candidate_id)).copy())

    # -- exports ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Node-link data (``networkx.node_link_graph(data, edges="edges")`` reads it back)."""
        return {
            "directed": True,
            "multigraph": False,
            "graph": {},
            "nodes": [{"id": n, **attrs} for n, attrs in sorted(self.graph.nodes(data=True))],
            "edges": [{"source": u, "target": v} for u, v in sorted(self.graph.edges())],
        }

    def write_graphml(self, path_or_file: str | PathLike[str] | IO[bytes]) -> None:
        """GraphML for Gephi/yEd/networkx; attributes that are None are left out."""
        out = nx.DiGraph()
        for n, attrs in sorted(self.graph.nodes(data=True)):
            out.add_node(n, **{k: v for k, v in attrs.items() if v is not None})
        out.add_edges_from(sorted(self.graph.edges()))
        nx.write_graphml(out, path_or_file)

    def _label(self, node: int) -> str:
        a = self.graph.nodes[node]
        retired = "" if a.get("alive", True) else " (retired)"
        return (f"#{node} {a.get('operator', '?')}\n{a.get('status', '?')} "
                f"train={_score_text(a.get('fitness'))}{retired}")

    def to_dot(self, name: str = "lineage") -> str:
        """Graphviz DOT text (render with ``dot -Tsvg``)."""
        lines = [f"digraph {_dot_quote(name)} {{", "  rankdir=TB;",
                 '  node [shape=box, fontname="monospace"];']
        for node in sorted(self.graph.nodes):
            a = self.graph.nodes[node]
            style = "solid" if a.get("alive", True) else "dashed"
            colour = _DOT_COLOURS.get(str(a.get("status")), "black")
            lines.append(f"  {node} [label={_dot_quote(self._label(node))}, "
                         f"color={_dot_quote(colour)}, style={_dot_quote(style)}];")
        lines.extend(f"  {u} -> {v};" for u, v in sorted(self.graph.edges()))
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_tree_text(self, root: int | None = None) -> str:
        """An indented ASCII tree; a merge child is expanded under its first parent
        and marked ``(merge, see above)`` under the others."""
        if root is not None:
            self._check(root)
        tops: Iterable[int] = [root] if root is not None else self.roots()
        lines: list[str] = []
        shown: set[int] = set()
        for top in tops:
            # (node, prefix of its own line, prefix for its children)
            stack: list[tuple[int, str, str]] = [(top, "", "")]
            while stack:
                node, head, rest = stack.pop()
                a = self.graph.nodes[node]
                text = (f"#{node} {_one_line(a.get('operator', '?'))} {a.get('status', '?')} "
                        f"train={_score_text(a.get('fitness'))}")
                if not a.get("alive", True):
                    text += " [retired]"
                if node in shown:
                    others = [p for p in self.graph.predecessors(node)]
                    text += f" (merge of {', '.join(f'#{p}' for p in sorted(others))}, see above)"
                    lines.append(head + text)
                    continue
                shown.add(node)
                lines.append(head + text)
                kids = sorted(self.graph.successors(node))
                for i in reversed(range(len(kids))):
                    last = i == len(kids) - 1
                    stack.append((kids[i], rest + ("`-- " if last else "|-- "),
                                  rest + ("    " if last else "|   ")))
        return "\n".join(lines) + ("\n" if lines else "")
