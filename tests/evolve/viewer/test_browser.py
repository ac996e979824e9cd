"""The viewer in a real browser: Playwright driving Debian's chromium (Playwright's own
browser download cannot work offline) against ``evolve serve``'s app on uvicorn.

The archive is written by the real storage: founders, children, a merge (two parents),
a retired node, a failed one, islands, and a prompt carrying markup. The tests click a
node, follow a merge to both parents, watch new candidates appear while the archive is
being written, check that markup in a candidate stays text, and that a token-protected
viewer shows nothing without it.

The page's Content-Security-Policy forbids eval, so the tests poll with ``evaluate`` (a
DevTools call, not page script) rather than ``wait_for_function``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archive import NewCandidate, SplitScore, SQLiteStorage, Status

from .test_server import Served

playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the browser extra")
pytest.importorskip("uvicorn", reason="needs the viewer extra")

from evolve.viewer import make_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    reason = "needs Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the viewer's browser tests {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)

HOSTILE = "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"


def write_archive(path: Path) -> SQLiteStorage:
    """Founders #1 and #2 (islands 0 and 1); #3 a child of #1, #4 of #2; #5 the merge of
    #3 and #4; #6 a failed child of #2; #7, a child of #5 whose prompt is markup, retired
    #1."""
    s = SQLiteStorage(path)
    s.set_meta({"config": {"name": "browser-test", "budget": {"candidates": 20}},
                "state": "running"})

    def add(slot: int, parents: tuple[int, ...], text: str, score: float | None,
            retire: tuple[int, ...] = (), island: int = 0) -> int:
        c = s.add_candidate(NewCandidate(slot, "prompt", {"task_prompts": [text]}, parents,
                                         "seed" if not parents else "mutate",
                                         generation=0 if not parents else 1 + slot // 4,
                                         descriptors={"island": island}), retire)
        if score is None:
            s.finish_candidate(c.id, Status.FAILED, reason="the task LLM timed out")
        else:
            s.finish_candidate(c.id, Status.EVALUATED, scores=[SplitScore("train", score)])
        return c.id

    add(0, (), "first founder", 0.2)
    add(1, (), "second founder", 0.4, island=1)
    add(2, (1,), "child of the first", 0.5)
    add(3, (2,), "child of the second", 0.6, island=1)
    add(4, (3, 4), "the merge of #3 and #4", 0.7)
    add(5, (2,), "a child that failed", None)
    add(6, (5,), HOSTILE, 0.1, retire=(1,))
    return s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        yield b
        b.close()


def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    page.goto(url)
    until(lambda: page.evaluate("() => Boolean(window.cladeforgeViewer?.ready)"),
          "the graph to be drawn")
    return page, errors


def click_node(page: Any, cid: int, tries: int = 3) -> str:
    """Bring #cid into view, then click where it is drawn (once the camera stopped); the
    pane's title.

    Sigma finds the node under the mouse in the picking image of its last frame; on a
    loaded machine that frame can lag the click, which then finds nothing, as it would
    for a person, who clicks again: so does this, up to ``tries`` times."""
    for _ in range(tries):
        page.evaluate(f"() => window.cladeforgeViewer.focus({cid})")
        time.sleep(0.05)  # the animation starts on the next frame
        until(lambda: not page.evaluate("() => window.cladeforgeViewer.moving()"),
              "the camera to stop")
        time.sleep(0.2)  # let sigma draw the frame it picks from
        where = page.evaluate(f"() => window.cladeforgeViewer.nodePosition({cid})")
        assert where is not None, f"#{cid} is not drawn"
        page.mouse.move(where["x"], where["y"])
        time.sleep(0.1)
        page.mouse.click(where["x"], where["y"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if (title := pane_title(page)).startswith(f"#{cid} "):
                return title
            time.sleep(0.05)
    raise AssertionError(f"{tries} clicks on #{cid} did not show its pane")


def pane_title(page: Any) -> str:
    """The pane's heading now ('' before a candidate is shown; no auto-wait)."""
    return page.evaluate("() => document.querySelector('#pane h2')?.textContent ?? ''")


@contextlib.contextmanager
def serving(run_dir: Path, token: str | None = None) -> Iterator[str]:
    """The viewer of ``run_dir`` on a real uvicorn; its address."""
    served = Served(make_app(run_dir, token=token))
    try:
        yield f"http://127.0.0.1:{served.port}/"
    finally:
        served.stop()


def hidden(page: Any) -> dict[int, bool]:
    return {cid: page.evaluate(f"() => window.cladeforgeViewer.hidden({cid})")
            for cid in range(1, 8)}


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Path, SQLiteStorage]]:
    path = tmp_path / "run" / "archive.sqlite"
    path.parent.mkdir()
    storage = write_archive(path)
    yield path.parent, storage
    storage.close()


def test_click_a_node_and_follow_a_merge_to_both_parents(browser: Any, archive) -> None:
    run_dir, _ = archive
    with serving(run_dir) as url:
        page, errors = open_page(browser, url)
        assert sorted(page.evaluate("() => window.cladeforgeViewer.nodes()")) == list(range(1, 8))
        click_node(page, 1)
        assert "first founder" in page.text_content("#pane")
        click_node(page, 5)
        pane = page.text_content("#pane")
        assert "parents: #3, #4" in pane and "the merge of #3 and #4" in pane
        for parent in (3, 4):  # follow each parent link of the merge
            click_node(page, 5)
            page.click(f"#pane a[data-id='{parent}']")
            until(lambda p=parent: pane_title(page).startswith(f"#{p} "),
                  f"the pane of parent #{parent}")
            assert "children: #5" in page.text_content("#pane")
        click_node(page, 6)
        assert "failed: the task LLM timed out" in page.text_content("#pane")
        # the ancestry filter hides all but #5's ancestors: both lines of the merge, up to
        # both founders
        click_node(page, 5)
        page.select_option("#filter", "ancestry")
        assert hidden(page) == {1: False, 2: False, 3: False, 4: False, 5: False, 6: True,
                                7: True}
        page.select_option("#filter", "clade")  # #5's first-parent line: founder #1's clade
        assert hidden(page) == {1: False, 2: True, 3: False, 4: True, 5: False, 6: True,
                                7: False}
        page.select_option("#filter", "all")
        page.fill("#search-id", "2")
        page.click("#search button")
        until(lambda: pane_title(page).startswith("#2 "), "the searched #2")
        assert "Operators" in page.text_content("#panels")
        assert errors == []


def test_markup_in_a_candidate_stays_text(browser: Any, archive) -> None:
    run_dir, _ = archive
    with serving(run_dir) as url:
        page, errors = open_page(browser, url)
        title = page.title()
        click_node(page, 7)
        assert HOSTILE in page.text_content("#pane .prompt")
        assert page.evaluate("() => document.querySelectorAll('#pane img, #pane script')"
                             ".length") == 0
        time.sleep(0.3)  # an onerror handler would have run by now
        assert page.title() == title != "pwned" and errors == []


def test_new_candidates_appear_while_the_run_writes(browser: Any, archive) -> None:
    run_dir, storage = archive
    with serving(run_dir) as url:
        page, errors = open_page(browser, url)
        assert 8 not in page.evaluate("() => window.cladeforgeViewer.nodes()")
        c = storage.add_candidate(NewCandidate(7, "prompt", {"task_prompts": ["late"]}, (3,),
                                               "mutate", generation=3))
        until(lambda: c.id in page.evaluate("() => window.cladeforgeViewer.nodes()"),
              "the new candidate to appear", timeout=10)
        pending = page.evaluate(f"() => window.cladeforgeViewer.colour({c.id})")
        storage.finish_candidate(c.id, Status.EVALUATED, scores=[SplitScore("train", 0.9)])
        until(lambda: page.evaluate(f"() => window.cladeforgeViewer.colour({c.id})") != pending,
              "the drawn node to take its score's colour", timeout=10)
        click_node(page, c.id)
        until(lambda: "(evaluated)" in pane_title(page), "its new status")
        assert errors == []


def test_a_lost_server_is_shown_in_the_page(browser: Any, archive) -> None:
    run_dir, _ = archive
    with serving(run_dir) as url:
        page, _ = open_page(browser, url)
        assert page.text_content("#problem") == ""
    until(lambda: "cannot update" in page.text_content("#problem"),
          "the page to say it cannot update", timeout=10)


def test_the_score_chart_of_a_long_run(browser: Any, archive) -> None:
    """300,000 points: their range is found without spreading them into one call (which
    overflows the stack past ~100k values: a 100k-candidate run drew nothing), and each
    line is thinned to the lowest and highest point of each of the chart's 380 columns,
    the extremes kept."""
    run_dir, _ = archive
    with serving(run_dir) as url:
        page, errors = open_page(browser, url)
        line = page.evaluate("""() => {
            const points = Array.from({ length: 300000 },
                                      (_, i) => [i + 1, ((i * 7919) % 1000) / 1000]);
            const box = chart("Score", [{ points, colour: "#000000" }], "legend");
            return box.querySelector("polyline").getAttribute("points");
        }""")
        drawn = [tuple(map(float, p.split(","))) for p in line.split()]
        assert 380 <= len(drawn) <= 2 * 381
        assert [x for x, _ in drawn] == sorted(x for x, _ in drawn)
        ys = [y for _, y in drawn]  # y 0 is drawn at 150, y 0.999 at 150 - 140 * 0.999
        assert max(ys) == pytest.approx(150) and min(ys) == pytest.approx(150 - 139.86)
        assert errors == []


def test_a_token_protected_viewer_shows_nothing_without_it(browser: Any, archive) -> None:
    run_dir, _ = archive
    with serving(run_dir, token="t0ken") as url:
        page = browser.new_page()
        response = page.goto(url)
        assert response.status == 401 and "first founder" not in page.content()
        page, errors = open_page(browser, f"{url}?token=t0ken")
        click_node(page, 1)  # the API calls carry the cookie the first answer set
        assert errors == []


def test_a_code_candidate_shows_its_program_and_its_diff(browser: Any, tmp_path: Path) -> None:
    """A code run's founder shows its program's text files (open); its child shows git's
    diff against it, and its own program folded below."""
    from evolve.code._repo import RunRepo

    run_dir = tmp_path / "code-run"
    run_dir.mkdir()
    storage = SQLiteStorage(run_dir / "archive.sqlite")
    storage.set_meta({"config": {"name": "code", "budget": {"candidates": 2}},
                      "state": "finished"})
    founder_files = {"solve.py": "def solve(x):\n    return x  # <b>founder</b>\n",
                     "data.bin": b"\x00\xff"}
    with RunRepo.for_run(run_dir, create=True) as repo:
        seed = repo.commit(founder_files, [], "seed", 1)
        child = repo.commit({**founder_files, "solve.py": "def solve(x):\n    return 2 * x\n"},
                            [seed], "child", 2)
    for slot, (sha, parents) in enumerate([(seed, ()), (child, (1,))]):
        c = storage.add_candidate(NewCandidate(slot, "code", {"commit": sha}, parents,
                                               "mutate" if parents else "seed"))
        storage.finish_candidate(c.id, Status.EVALUATED, scores=[SplitScore("train", 0.5)])
    storage.close()
    with serving(run_dir) as url:
        page, errors = open_page(browser, url)
        click_node(page, 1)
        files = page.evaluate("""() => [...document.querySelectorAll('#pane details.file')]
            .map((d) => [d.querySelector('summary').textContent, d.open,
                         d.querySelector('pre').textContent])""")
        assert files == [["solve.py", True, founder_files["solve.py"]]]  # no binary file
        assert page.evaluate("() => document.querySelectorAll('#pane b').length") == 0
        click_node(page, 2)
        diff = page.text_content("#pane pre.diff")
        assert "-    return x  # <b>founder</b>\n+    return 2 * x\n" in diff
        assert page.evaluate("""() => [...document.querySelectorAll('#pane details.file')]
            .map((d) => d.open)""") == [False]
        assert errors == []
