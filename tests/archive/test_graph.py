"""LineageGraph on hand-made lineages, and its exports read back."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import pytest

from archive import InMemoryStorage, LineageGraph, Status, UnknownCandidateError

from .conformance import new, train

OP = 'cross "over"\\\nx'  # a quote, a backslash and a line break: labels must escape them


@pytest.fixture
def graph() -> LineageGraph:
    """Two seeds; 6 merges 3 and 5; 8 merges 4 and 6; 4 is retired by 8; 7 failed.

        1 -> 3, 4        2 -> 5        3, 5 -> 6 -> 7        4, 6 -> 8
    """
    s = InMemoryStorage()
    for slot, parents in enumerate([(), (), (1,), (1,), (2,), (3, 5), (6,)]):
        s.add_candidate(new(slot, parents))
    s.add_candidate(new(7, (4, 6), operator=OP), retire=[4])
    for cid in (1, 2, 3, 5, 6, 8):
        s.finish_candidate(cid, Status.EVALUATED, scores=[train(cid / 10)])
    s.finish_candidate(7, Status.FAILED, reason="crash")
    return LineageGraph.from_storage(s)


def test_lineage_questions(graph: LineageGraph) -> None:
    assert graph.roots() == [1, 2]
    assert graph.ancestors(6) == {1, 2, 3, 5} and graph.ancestors(1) == set()
    assert graph.ancestors(8) == {1, 2, 3, 4, 5, 6}
    assert graph.descendants(1) == {3, 4, 6, 7, 8} and graph.descendants(8) == set()
    assert graph.clade(2) == {2, 5, 6, 7, 8} and graph.clade(7) == {7}
    depths = {n: graph.depth(n) for n in range(1, 9)}
    assert depths == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2, 7: 3, 8: 3}
    assert graph.lineage(8) == [1, 2, 3, 4, 5, 6, 8]
    assert graph.lineage(1) == [1]
    assert graph.parents(8) == [4, 6] and graph.children(6) == [7, 8]
    with pytest.raises(UnknownCandidateError):
        graph.ancestors(99)
    with pytest.raises(UnknownCandidateError):
        graph.depth(0)


def test_ancestry_is_a_graph_of_one_lineage(graph: LineageGraph) -> None:
    sub = graph.ancestry(6)
    assert sorted(sub.graph.nodes) == [1, 2, 3, 5, 6] and sub.roots() == [1, 2]
    assert sorted(sub.graph.edges) == [(1, 3), (2, 5), (3, 6), (5, 6)]
    assert sub.graph.nodes[6] == graph.graph.nodes[6] and sub.descendants(1) == {3, 6}
    assert "#8" not in sub.to_tree_text() and len(graph) == 8  # the original is unchanged
    with pytest.raises(UnknownCandidateError):
        graph.ancestry(42)


def test_node_attributes_keep_retired_and_failed(graph: LineageGraph) -> None:
    assert len(graph) == 8
    a4 = graph.graph.nodes[4]
    assert a4["alive"] is False and a4["status"] == "pending" and a4["fitness"] is None
    assert graph.graph.nodes[7]["status"] == "failed"
    assert graph.graph.nodes[6] == {"operator": "mutate", "generation": 0, "status": "evaluated",
                                    "fitness": 0.6, "alive": True, "slot": 5, "kind": "prompt"}


def test_depth_of_a_long_chain_needs_no_recursion() -> None:
    s = InMemoryStorage()
    s.add_candidate(new(0))
    for slot in range(1, 1500):
        s.add_candidate(new(slot, (slot,)))
    g = LineageGraph.from_index(s.index)
    assert g.depth(1500) == 1499 and len(g.ancestors(1500)) == 1499
    assert len(g.to_tree_text().splitlines()) == 1500


def test_json_round_trip(graph: LineageGraph) -> None:
    data = json.loads(json.dumps(graph.to_json()))
    back = nx.node_link_graph(data, edges="edges")
    assert back.is_directed()
    assert sorted(back.edges()) == sorted(graph.graph.edges())
    assert dict(back.nodes(data=True)) == dict(graph.graph.nodes(data=True))


@pytest.mark.parametrize("to_file", [False, True])
def test_graphml_round_trip(graph: LineageGraph, tmp_path: Path, to_file: bool) -> None:
    if to_file:
        target: Path | io.BytesIO = tmp_path / "lineage.graphml"
        graph.write_graphml(target)
    else:
        target = io.BytesIO()
        graph.write_graphml(target)
        target.seek(0)
    back = nx.read_graphml(target, node_type=int)
    assert sorted(back.edges()) == sorted(graph.graph.edges())
    assert back.nodes[6]["fitness"] == 0.6 and back.nodes[6]["operator"] == "mutate"
    assert "fitness" not in back.nodes[4]  # None is left out
    assert back.nodes[4]["alive"] is False and back.nodes[8]["operator"] == OP


def test_dot_text(graph: LineageGraph) -> None:
    dot = graph.to_dot()
    assert dot.startswith('digraph "lineage" {') and dot.rstrip().endswith("}")
    for n in range(1, 9):
        assert re.search(rf"^  {n} \[label=\"#{n} ", dot, re.M)
    edges = set(re.findall(r"^  (\d+) -> (\d+);$", dot, re.M))
    assert edges == {(str(u), str(v)) for u, v in graph.graph.edges()}
    assert r'label="#8 cross \"over\"\\\nx\nevaluated train=0.8"' in dot


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="needs Graphviz's `dot` program (apt-get install graphviz)")
def test_dot_parses_with_graphviz(graph: LineageGraph) -> None:
    out = subprocess.run(["dot", "-Tplain"], input=graph.to_dot(), capture_output=True,
                         text=True, check=True).stdout
    nodes = {line.split()[1] for line in out.splitlines() if line.startswith("node ")}
    edges = {tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("edge ")}
    assert nodes == {str(n) for n in range(1, 9)}
    assert edges == {(str(u), str(v)) for u, v in graph.graph.edges()}
    assert r'"#8 cross \"over\"\\\nx\nevaluated train=0.8"' in out  # label kept as given


def test_tree_text(graph: LineageGraph) -> None:
    assert graph.to_tree_text() == """\
#1 seed evaluated train=0.1
|-- #3 mutate evaluated train=0.3
|   `-- #6 mutate evaluated train=0.6
|       |-- #7 mutate failed train=-
|       `-- #8 cross "over"\\\\nx evaluated train=0.8
`-- #4 mutate pending train=- [retired]
    `-- #8 cross "over"\\\\nx evaluated train=0.8 (merge of #4, #6, see above)
#2 seed evaluated train=0.2
`-- #5 mutate evaluated train=0.5
    `-- #6 mutate evaluated train=0.6 (merge of #3, #5, see above)
"""
    assert graph.to_tree_text(root=5) == """\
#5 mutate evaluated train=0.5
`-- #6 mutate evaluated train=0.6
    |-- #7 mutate failed train=-
    `-- #8 cross "over"\\\\nx evaluated train=0.8
"""
    assert LineageGraph.from_index(InMemoryStorage().index).to_tree_text() == ""
