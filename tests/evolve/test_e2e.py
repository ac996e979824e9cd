"""End to end: the real ``evolve`` CLI on the real llama.cpp server with SmolLM2."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import networkx as nx

from .conftest import needs_model, read_rows, run_evolve, status_json

pytestmark = [needs_model]


def candidate_rows(run_dir: Path) -> list[dict]:
    data = status_json(run_dir)
    rows = []
    for cid in range(1, data["candidates"] + 1):
        shown = json.loads(run_evolve("show", str(run_dir), str(cid), "--json").stdout)
        rows.append(shown)
    return rows


#: one line of ``evolve lineage``'s tree: a prefix of 4-character columns, then ``#<id> ...``
TREE_LINE = re.compile(r"(?P<prefix>(?:[| ]   )*(?:[|`]-- )?)#(?P<id>\d+) (?P<text>.*)")


def check_tree(tree: str, rows: list[dict]) -> None:
    """The printed lineage tree holds the archive's lineage exactly.

    Each candidate is expanded once (with its own operator and status); every other
    time it is printed it is a leaf marked as a merge, naming all its parents. Every
    line below the top level sits under its parent: the nearest line above it one
    level less deep, and the printed (parent, child) pairs are the archive's
    edges, each once. The top level is the candidates without parents, ascending;
    children come in ascending order, the last one drawn with a corner.
    """
    by_id = {row["id"]: row for row in rows}
    edges = Counter()
    expanded: list[int] = []
    path: list[int] = []  # ids of the current line's ancestors in the printout, by depth
    lines = tree.rstrip("\n").splitlines()  # print() adds a newline to the text's own
    assert lines, "the tree printed nothing"
    parsed = []
    for line in lines:
        match = TREE_LINE.fullmatch(line)
        assert match, f"not a tree line: {line!r}"
        prefix, cid, text = match["prefix"], int(match["id"]), match["text"]
        assert len(prefix) % 4 == 0
        depth = len(prefix) // 4
        assert depth <= len(path), f"{line!r} is deeper than any line above it can parent"
        del path[depth:]
        row = by_id[cid]
        assert text.startswith(f"{row['operator']} {row['status']} train="), (line, row)
        if depth == 0:
            assert not row["parents"], f"#{cid} has parents {row['parents']} but is a top line"
        else:
            parent = path[-1]
            assert parent in row["parents"], (
                f"#{cid} is printed under #{parent}, its parents are {row['parents']}")
            edges[(parent, cid)] += 1
        merge = f" (merge of {', '.join(f'#{p}' for p in sorted(row['parents']))}, see above)"
        parsed.append((depth, prefix, cid))
        if cid in expanded:
            assert text.endswith(merge), f"#{cid} printed twice, the second time not as a merge"
            continue  # a leaf: a line below it one level deeper fails the depth check
        assert not text.endswith("see above)"), line
        expanded.append(cid)
        path.append(cid)
    assert sorted(expanded) == sorted(by_id), "every candidate is expanded exactly once"
    assert [c for d, _, c in parsed if d == 0] == sorted(i for i, r in by_id.items()
                                                          if not r["parents"])
    assert dict(edges) == {(p, row["id"]): 1 for row in rows for p in row["parents"]}
    for i, (depth, prefix, cid) in enumerate(parsed):
        if depth == 0:
            continue
        siblings_after = []
        for later_depth, _, later in parsed[i + 1:]:
            if later_depth < depth:
                break
            if later_depth == depth:
                siblings_after.append(later)
        assert all(cid < later for later in siblings_after), "children in ascending order"
        corner = "|-- " if siblings_after else "`-- "
        assert prefix.endswith(corner), f"#{cid}: {prefix!r} should end with {corner!r}"


#: the end-of-run line on the best candidate's gain over the seed, in each of its forms
GAIN_LINE = re.compile(
    r"gain over the seed(?:: none, the best is the seed"
    r"|: no validation comparison is possible, the best was chosen by train score "
    r"\(no child was validated\)"
    r"| on validation: (?P<diff>[+-]\d\.\d{3}) \((?P<won>\d+) won, (?P<lost>\d+) lost, "
    r"(?P<tied>\d+) tied of (?P<n>\d+); sign test p = (?P<p>[\d.]+)\): "
    r"(?P<verdict>beyond noise|within noise(?: - this may be luck)?))")


def check_gain_line(stdout: str, data: dict) -> None:
    """The line follows "best ..." and agrees with ``evolve status --json``'s "gain"."""
    lines = stdout.splitlines()
    best = next(i for i, line in enumerate(lines) if line.startswith("best prompt: #"))
    match = GAIN_LINE.fullmatch(lines[best + 1])
    assert match, f"not a gain line: {lines[best + 1]!r}"
    gain = data["gain"]
    if data["best"]["id"] == data["seed"]["id"]:
        assert gain["verdict"] == "best is the seed" and "the best is the seed" in match[0]
    elif data["best_by"] == "train":
        assert gain["verdict"] == "not comparable" and "train score" in match[0]
    else:  # seed and best are validated on the same validation_size examples
        assert match["n"] is not None, match[0]
        assert (int(match["won"]), int(match["lost"]), int(match["tied"]), int(match["n"])) == (
            gain["won"], gain["lost"], gain["tied"], gain["examples"])
        assert gain["examples"] == 4 and gain["unmatched"] == 0
        assert match["verdict"].startswith(gain["verdict"])
        assert float(match["diff"]) == round(gain["mean_difference"], 3)
        assert abs(data["best"]["validation"] - data["seed"]["validation"]
                   - gain["mean_difference"]) < 1e-9


def test_run_records_everything_and_reports_it(make_config, tmp_path):
    config = make_config()
    out = run_evolve("run", str(config), "--name", "first", "--quiet")
    run_dir = tmp_path / "runs" / "first"
    assert "seed prompt: #1" in out.stdout and "best prompt: #" in out.stdout

    data = status_json(run_dir)
    check_gain_line(out.stdout, data)
    assert data["name"] == "first" and data["state"] == "finished"
    assert data["candidates"] == 8
    assert sum(data["counts"].values()) == 8 and data["counts"]["pending"] == 0
    assert data["seed"]["id"] == 1 and data["seed"]["validation"] is not None
    assert data["best"]["train"] is not None and data["best"]["validation"] is not None
    assert data["llm"]["calls"] > 0 and data["llm"]["tokens"] > 0
    assert data["llm"]["cached_responses"] > 0

    rows = candidate_rows(run_dir)
    assert [r["operator"] for r in rows[:4]] == ["seed", "init", "init", "init"]
    children = rows[4:]
    assert all(r["parents"] and r["generation"] >= 1 for r in children)
    no_llm = {"seed", "crossover", "context_shuffle"}  # operators that ask no LLM
    for row in rows:
        # every LLM-made candidate records its exact requests and responses
        exchanges = row["mutation"]["exchanges"]
        if row["operator"] in no_llm:
            assert not exchanges
        elif row["status"] != "invalid":  # an invalid child may fail before asking
            assert exchanges, row
        for ex in exchanges:
            assert ex["messages"][-1]["role"] == "user" and "response" in ex
    for row in rows:
        if row["status"] == "evaluated":
            train = row["scores"]["train"]
            assert len(train["examples"]) == 3
            assert train["mean"] == sum(e[1] for e in train["examples"]) / 3
        elif row["status"] in ("failed", "invalid"):
            assert row["reason"]

    # tournament: each evaluated child retired the loser of its tournament
    retired = [r for r in rows if r["retired_by"] is not None]
    assert all(rows[r["retired_by"] - 1]["status"] != "invalid" for r in retired)

    # the lineage in every export format
    tree = run_evolve("lineage", str(run_dir)).stdout
    check_tree(tree, rows)
    graph = json.loads(run_evolve("lineage", str(run_dir), "--format", "json").stdout)
    assert len(graph["nodes"]) == 8
    graphml = run_evolve("lineage", str(run_dir), "--format", "graphml").stdout
    parsed = nx.parse_graphml(graphml)
    assert parsed.number_of_nodes() == 8
    assert parsed.number_of_edges() == sum(len(r["parents"]) for r in rows)
    ET.fromstring(graphml)
    dot = run_evolve("lineage", str(run_dir), "--format", "dot").stdout
    assert dot.lstrip().startswith("digraph") and dot.count("->") == parsed.number_of_edges()
    child = children[-1]
    ancestry = json.loads(run_evolve("lineage", str(run_dir), "--format", "json", "--id",
                                     str(child["id"])).stdout)
    ids = {n["id"] for n in ancestry["nodes"]}
    assert child["id"] in ids and set(child["parents"]) <= ids and len(ids) < 8

    text = run_evolve("show", str(run_dir), str(child["id"])).stdout
    assert f"candidate #{child['id']}" in text and f"operator: {child['operator']}" in text

    # the archive on disk is SQLite in WAL mode
    assert read_rows(run_dir, "PRAGMA journal_mode")[0][0] == "wal"


def test_replay_from_cache_is_identical_and_free(make_config, tmp_path):
    """Generational mode is deterministic given the same LLM responses: a fork at 0
    replays the whole run from the response cache, with no LLM call."""
    run_evolve("run", str(make_config()), "--name", "orig", "--quiet")
    orig = tmp_path / "runs" / "orig"
    run_evolve("fork", str(orig), "--at", "0", "--name", "replay", "--quiet")
    replay = tmp_path / "runs" / "replay"

    def essence(rows):
        return [(r["slot"], r["genome"], r["parents"], r["operator"], r["status"],
                 r["retired_by"], r["scores"]) for r in rows]

    assert essence(candidate_rows(replay)) == essence(candidate_rows(orig))
    llm = status_json(replay)["llm"]
    assert llm["calls"] == 0 and llm["cache_hits"] > 0


def test_fork_keeps_history_and_continues_with_new_settings(make_config, tmp_path):
    run_evolve("run", str(make_config()), "--name", "base", "--quiet")
    base = tmp_path / "runs" / "base"
    base_rows = candidate_rows(base)
    run_evolve("fork", str(base), "--at", "5", "--name", "branch", "--quiet",
               "--set", "budget.candidates=9", "--set", "evolution.selector=dgm")
    branch = tmp_path / "runs" / "branch"
    rows = candidate_rows(branch)
    assert len(rows) == 9
    def kept(row):
        return row["genome"], row["parents"], row["status"], row["scores"].get("train")

    assert [kept(r) for r in rows[:5]] == [kept(r) for r in base_rows[:5]]
    assert all(max(r["parents"]) <= r["id"] - 1 for r in rows[5:])
    data = status_json(branch)
    assert data["forked_from"] == {"run": str(base), "at": 5}
    assert "dgm" in (branch / "config.yaml").read_text()


def test_steady_state_mode(make_config, tmp_path):
    config = make_config({"evolution": {"mode": "steady_state", "concurrency": 2,
                                        "selector": "dgm"}})
    run_evolve("run", str(config), "--name", "steady", "--quiet")
    run_dir = tmp_path / "runs" / "steady"
    slots = [r[0] for r in read_rows(run_dir, "SELECT slot FROM candidates ORDER BY slot")]
    assert slots == list(range(8))
    assert status_json(run_dir)["counts"]["pending"] == 0


def test_token_budget_stops_the_run(make_config, tmp_path):
    config = make_config({"budget": {"candidates": 100, "tokens": 1}})
    out = run_evolve("run", str(config), "--name", "tokens", "--quiet")
    assert "token budget reached" in out.stdout
    assert status_json(tmp_path / "runs" / "tokens")["candidates"] == 4  # founders only
