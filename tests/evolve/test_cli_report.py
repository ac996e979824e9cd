"""``evolve report RUN``: one self-contained HTML file of a run made by the real command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evolve.cli import main

from ..stub_openai import StubOpenAI
from .test_roles import write_config


def test_evolve_report_writes_one_self_contained_html_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with StubOpenAI() as stub:
        config = write_config(tmp_path, stub.base_url)
        assert main(["run", str(config), "--name", "packing", "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "packing"
    capsys.readouterr()
    assert main(["report", str(run_dir)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == run_dir / "report.html"
    html = written.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "packing" in html and "Lineage of the best candidate" in html
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', html)) >= 2
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)  # nothing loaded from outside
    other = tmp_path / "elsewhere.html"
    assert main(["report", str(run_dir), "-o", str(other)]) == 0
    assert other.read_text().count("<h2>") == html.count("<h2>")


def test_evolve_report_on_a_missing_run_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
