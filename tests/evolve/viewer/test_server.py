"""``evolve serve``'s web server, on a real uvicorn over a run made by the real command:
its JSON answers are the archive's, it follows a run that is still writing, it needs a
token beyond loopback, it reads nothing outside the run and writes nothing."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="needs the viewer extra")

from archive import ArchiveReader, NewCandidate, SQLiteStorage  # noqa: E402
from evolve.cli import main  # noqa: E402
from evolve.viewer import ViewerError, make_app  # noqa: E402
from evolve.viewer._app import is_loopback  # noqa: E402

from ...stub_openai import StubOpenAI  # noqa: E402
from ..test_monitor import prompt_run  # noqa: E402

HOSTILE = "<script>document.title='pwned'</script> & \"quotes\""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("viewer")
    with StubOpenAI() as stub:
        return prompt_run(tmp, stub, "watched")


class Served:
    def __init__(self, app: Any) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the viewer did not start"
            time.sleep(0.02)

    def get(self, path: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served(run_dir: Path) -> Iterator[Served]:
    s = Served(make_app(run_dir))
    yield s
    s.stop()


def test_the_endpoints_answer_what_the_archive_holds(run_dir: Path, served: Served) -> None:
    with ArchiveReader(run_dir / "archive.sqlite") as reader:
        graph, first = reader.graph(), reader.candidate(1)
    run = served.json("/api/run")
    assert run["name"] == "watched" and run["state"] == "finished"
    assert served.json("/api/graph")["columns"] == graph
    child = next(i for i, p in zip(graph["id"], graph["parents"], strict=True) if p)
    shown = served.json(f"/api/candidate/{child}")
    assert shown["id"] == child and shown["parents"] == graph["parents"][graph["id"].index(child)]
    assert served.json("/api/candidate/1")["genome"] == json.loads(json.dumps(first.genome))
    assert child in served.json(f"/api/candidate/{shown['parents'][0]}")["children"]
    assert served.get("/api/candidate/99999")[0] == 404
    status, headers, body = served.get("/")
    assert status == 200 and b"<script src=\"/static/viewer.js\"" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert served.get("/static/viewer.js")[0] == 200


def test_nothing_outside_the_page_is_served(served: Served) -> None:
    for path in ("/static/../../archive.sqlite", "/static/%2e%2e/%2e%2e/archive.sqlite",
                 "/static/..%2f..%2farchive.sqlite", "/archive.sqlite", "/api/candidate/..",
                 "/static//etc/passwd"):
        status, _, body = served.get(path)
        assert status == 404, (path, status)
        assert b"SQLite" not in body and b"root:" not in body


def test_a_running_archive_is_followed_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "run" / "archive.sqlite"
    path.parent.mkdir()
    writer = SQLiteStorage(path)
    writer.add_candidate(NewCandidate(0, "prompt", {"task_prompts": [HOSTILE]}, (), "seed"))
    served = Served(make_app(path.parent))
    try:
        before = served.json("/api/version")["version"]
        assert served.json("/api/graph")["columns"]["id"] == [1]
        # a prompt carrying markup comes back as the very string, in JSON
        status, headers, body = served.get("/api/candidate/1")
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["genome"]["task_prompts"] == [HOSTILE]
        writer.add_candidate(NewCandidate(1, "prompt", {"task_prompts": ["b"]}, (1,), "mutate"))
        assert served.json("/api/version")["version"] != before
        assert served.json("/api/graph")["columns"]["parents"] == [[], [1]]
    finally:
        served.stop()
    writer.close()
    mtime = path.stat().st_mtime_ns
    served = Served(make_app(path.parent))
    served.json("/api/graph")
    served.stop()
    assert path.stat().st_mtime_ns == mtime  # a viewer alone writes nothing


def test_beyond_loopback_every_request_needs_the_token(run_dir: Path) -> None:
    served = Served(make_app(run_dir, token="s3cret-token"))
    try:
        for path in ("/", "/api/graph", "/api/candidate/1", "/static/viewer.js"):
            assert served.get(path)[0] == 401
            assert served.get(path + "?token=wrong")[0] == 401
            assert served.get(path, {"Authorization": "Bearer s3cret-tokeN"})[0] == 401
        status, headers, _ = served.get("/?token=s3cret-token")
        assert status == 200 and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert served.get("/api/graph", {"Cookie": cookie})[0] == 200
        assert served.get("/api/graph", {"Authorization": "Bearer s3cret-token"})[0] == 200
    finally:
        served.stop()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_a_directory_without_a_run_is_a_clear_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ViewerError, match="not a Cladeforge run"):
        make_app(tmp_path)
    assert main(["serve", str(tmp_path)]) != 0
    assert "not a Cladeforge run" in capsys.readouterr().err
