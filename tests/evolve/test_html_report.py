"""``evolve report``'s HTML page (``evolve/_html_report.py``) on a small real SQLite
archive built by hand: one self-contained document, the archive's values, the best
candidate's lineage, escaped genomes, with and without a collapse-monitor history."""

from __future__ import annotations

import hashlib
import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from archive import (
    ExampleScore,
    Failure,
    InMemoryStorage,
    NewCandidate,
    SplitScore,
    SQLiteStorage,
    Status,
)
from evolve import CladeforgeError
from evolve._config import RunConfig, config_to_data
from evolve._diversity import snapshot
from evolve._html_report import MISSING_MATPLOTLIB, html_report

SCRIPT = "<script>alert('owned')</script>"


def prompt(text: str) -> dict:
    return {"task_prompts": [text], "mutation_prompt": "Rephrase.", "context": []}


def split(name: str, scores: dict[str, float]) -> SplitScore:
    return SplitScore(name, sum(scores.values()) / len(scores),
                      tuple(ExampleScore(e, s) for e, s in scores.items()))


def build(storage, *, running: bool = False) -> None:
    """Founders 1, 2; 3 <- 1 (direct), 4 <- 3 (lineage, a <script> prompt), 5 <- (4, 2)
    (crossover, the best on validation), 6 <- 1 (direct, invalid); with ``running``, 7
    <- 5 pending. Every evaluated candidate has probe scores on examples p1, p2."""
    rows = [  # parents, generation, operator, prompt, train, validation, probe
        ((), 0, "seed", "Think step by step.", 0.25, 0.3, {"p1": 1.0, "p2": 0.0}),
        ((), 0, "initial", "Answer briefly.", 0.5, None, {"p1": 0.0, "p2": 0.0}),
        ((1,), 1, "direct", "Think in small steps.", 0.5, None, {"p1": 1.0, "p2": 0.0}),
        ((3,), 2, "lineage", f"Solve it. {SCRIPT}", 0.75, 0.6, {"p1": 1.0, "p2": 1.0}),
        ((4, 2), 3, "crossover", "Solve it, check it.", 1.0, 0.8, {"p1": 1.0, "p2": 0.0}),
    ]
    for slot, (parents, gen, operator, text, train, validation, probe) in enumerate(rows):
        c = storage.add_candidate(NewCandidate(
            slot=slot, kind="prompt", genome=prompt(text), parent_ids=parents,
            operator=operator, generation=gen))
        storage.finish_candidate(c.id, Status.EVALUATED, scores=[
            split("train", {"t1": train}), split("probe", probe)])
        if validation is not None:
            storage.add_scores(c.id, split("validation", {"v1": validation}))
    bad = storage.add_candidate(NewCandidate(slot=5, kind="prompt", genome=prompt(""),
                                             parent_ids=(1,), operator="direct"))
    storage.finish_candidate(bad.id, Status.INVALID, reason="empty", failure=Failure.NO_BLOCK)
    if running:
        storage.add_candidate(NewCandidate(slot=6, kind="prompt", genome=prompt("next"),
                                           parent_ids=(5,), operator="direct"))
    storage.set_meta({"config": config_to_data(RunConfig(name="tiny")),
                      "state": "running" if running else "finished",
                      "stop_reason": None if running else "candidate budget reached"})


class Page(HTMLParser):
    """What the tests look at: image sources, every attribute value, the lineage rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.lineage: list[list[str]] = []
        self._in_lineage = False
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.attributes += [(k, v or "") for k, v in attrs]
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "table":
            self._in_lineage = dict(attrs).get("class") == "lineage"
        if self._in_lineage and tag == "tr":
            self.lineage.append([])
        if self._in_lineage and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_lineage = False
        if tag == "td" and self._cell is not None:
            self.lineage[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def archive_files(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "runs" / "tiny"
    directory.mkdir(parents=True)
    storage = SQLiteStorage(directory / "archive.sqlite")
    build(storage)
    storage.close()
    return directory


def render(directory: Path, *, quiet: bool = True) -> str:
    """The report of the run in ``directory``, checking that it writes nothing: the
    storage's writing methods fail, and (with ``quiet``: no other process writes) the
    archive's files are unchanged."""
    storage = SQLiteStorage(directory / "archive.sqlite")
    try:
        for method in ("write", "set_meta", "import_candidate", "cache_put_many"):
            setattr(storage, method, forbidden)
        before = archive_files(directory)
        page = html_report(storage)
        if quiet:
            assert archive_files(directory) == before
        return page
    finally:
        storage.close()


def forbidden(*args, **kwargs):
    raise AssertionError("the report wrote to the archive")


def check_self_contained(page: str) -> Page:
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<html") == 1 and page.count("<body") == 1
    assert not re.search(r"https?://|url\(|<link|<script", page, re.IGNORECASE)
    parsed = Page(page)
    for name, value in parsed.attributes:
        if name in ("src", "href"):
            assert value.startswith("data:image/png;base64,"), (name, value[:40])
    return parsed


def test_a_finished_run_with_collapse_history(run_dir: Path):
    storage = SQLiteStorage(run_dir / "archive.sqlite")
    history = [{**snapshot(storage.index, generation=g, candidates=2 + g,
                           rng=np.random.default_rng(g), ks=(1, 2)),
                "pass_at_k": {"1": 0.2 + 0.1 * g, "2": 0.9 - 0.1 * g}} for g in range(5)]
    storage.set_meta({"collapse": history})
    storage.close()
    page = render(run_dir)
    parsed = check_self_contained(page)
    assert len(parsed.images) == 4  # fitness, pass@k, diversity over time, operators
    assert "Run tiny" in page and "finished" in page and "candidate budget reached" in page
    assert "diversity collapse: pass@1 rose" in page
    assert "5 snapshots recorded" in page


def test_values_are_the_archives(run_dir: Path):
    page = render(run_dir)
    assert "<tr><td>evaluated</td><td>5</td></tr>" in page
    assert "<tr><td>invalid</td><td>1</td></tr>" in page
    assert "<tr><td>train</td><td>1.000</td><td>#5</td></tr>" in page
    assert "<tr><td>validation</td><td>0.800</td><td>#5</td></tr>" in page
    assert "Best candidate: #5 (chosen by validation score)" in page
    # the operators' table, counted by _report.children_report
    assert "<tr><td>direct</td><td>2</td><td>1</td><td>50%</td><td>0</td>" \
           "<td>no_block 1</td></tr>" in page


def test_the_lineage_table_lists_the_best_candidates_line(run_dir: Path):
    parsed = Page(render(run_dir))
    rows = [r for r in parsed.lineage if r]
    assert [r[1] for r in rows] == ["1", "3", "4", "5"]
    assert [r[3] for r in rows] == ["seed", "direct", "lineage", "crossover"]
    assert rows[-1][4] == "#4, #2"
    assert [r[2] for r in rows] == ["0", "1", "2", "3"]
    assert [r[5] for r in rows] == ["0.250", "0.500", "0.750", "1.000"]
    assert [r[6] for r in rows] == ["0.300", "-", "0.600", "0.800"]


def test_a_script_in_a_prompt_is_shown_as_text(run_dir: Path):
    page = render(run_dir)
    assert SCRIPT not in page
    assert html.escape(SCRIPT) in page
    assert any(SCRIPT in cell for row in Page(page).lineage for cell in row)  # shown as text


def test_no_collapse_history_is_computed_fresh(run_dir: Path):
    page = render(run_dir)
    parsed = check_self_contained(page)
    assert "recorded no collapse monitor" in page
    assert len(parsed.images) == 3  # fitness, pass@k now, operators
    # now: living 1..5 on probe; p1 passed by 4 of 5, p2 by 1 of 5: pass@1 = 0.5
    assert "pass@1 0.500" in page
    assert "on the probe split" in page


def test_a_running_run_is_read_while_its_writer_holds_the_archive(tmp_path: Path):
    directory = tmp_path / "live"
    directory.mkdir()
    writer = SQLiteStorage(directory / "archive.sqlite")
    try:
        build(writer, running=True)
        page = render(directory, quiet=False)  # the writer's checkpoints change the files
        assert "<b>running</b>" in page
        assert "<tr><td>pending</td><td>1</td></tr>" in page
        check_self_contained(page)
        writer.add_candidate(NewCandidate(slot=7, kind="prompt", genome=prompt("more"),
                                          parent_ids=(5,), operator="direct"))
    finally:
        writer.close()


def test_an_empty_run_renders():
    storage = InMemoryStorage()
    page = html_report(storage, state="created")
    parsed = check_self_contained(page)
    assert len(parsed.images) == 1  # the fitness panel, saying there are no scores
    assert "No child finished yet" in page and "No candidate has been evaluated yet" in page


def test_the_state_given_by_the_caller_wins(run_dir: Path):
    storage = SQLiteStorage(run_dir / "archive.sqlite")
    try:
        assert "<b>interrupted</b>" in html_report(storage, state="interrupted")
    finally:
        storage.close()


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(CladeforgeError) as info:
        html_report(InMemoryStorage())
    assert str(info.value) == MISSING_MATPLOTLIB
