"""Replies that fit (issue 14, point 4): a code request leaves room in the mutator's context
window for a reply of max_tokens, by trimming what it only lists (reference files, then failed
attempts, then feedback); the instruction, the task, the files to change and the answer format
are always sent whole."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from evolve._clients import context_window
from evolve._config import LLMConfig
from evolve.code.operators import DiffEdit, FullRewrite
from evolve.code.operators._base import _request_chars
from evolve.code.operators._diff_edit import diff_format
from evolve.operators._base import CHARS_PER_TOKEN

from .code_support import code_context
from .op_support import ScriptedLLM

SOLVE = "def solve(n):\n" + "".join(f"    n += {i}\n" for i in range(40)) + "    return n\n"
TREE = {"solve.py": SOLVE, "helper.py": "def helper():\n    return 1\n" * 20,
        "README.md": "Read me.\n" * 30}
ATTEMPTS = tuple(f"diff_edit (no_match): attempt {i} " + "y" * 150 for i in range(3))
FEEDBACK = "score 0.40\n" + "example failed: IndexError\n" * 60


def request_for(context_tokens: int | None, operator=None, max_tokens: int = 256) -> str:
    op = operator or DiffEdit()
    ctx = replace(code_context({1: TREE}, ScriptedLLM(), feedback=FEEDBACK,
                               max_tokens=max_tokens),
                  attempts=ATTEMPTS, context_tokens=context_tokens)
    return op.request(ctx, "Improve it.", ["solve.py"], diff_format(["solve.py"]))


def test_an_unknown_window_sends_everything() -> None:
    text = request_for(None)
    for needle in ("## How the current version did", "## Earlier changes", "### helper.py",
                   "### README.md", "### solve.py", "## Answer format"):
        assert needle in text


def test_what_is_only_listed_gives_way_first() -> None:
    whole = len(request_for(None))
    chars = [len(request_for(tokens)) for tokens in range(4096, 200, -50)]
    assert chars[0] == whole  # room for everything
    sizes = {}
    for tokens in range(4096, 200, -25):
        text = request_for(tokens)
        sizes[tokens] = text
        assert "### solve.py" in text and "## Answer format" in text and "Improve it." in text
        feedback_whole = "more characters]" not in text and "example failed" in text
        if "### README.md" in text or "### helper.py" in text:
            assert feedback_whole  # reference files go before the feedback is cut
        if feedback_whole:
            assert "## Earlier changes" in text  # the feedback is cut before the attempts go
    smallest = list(sizes.values())[-1]
    assert "## Earlier changes" not in smallest and "### README.md" not in smallest
    assert any("more characters]" in t and "### README.md" not in t for t in sizes.values())
    assert chars[-1] < whole / 3


@settings(max_examples=60, deadline=None)
@given(tokens=st.integers(300, 6000), max_tokens=st.integers(16, 1024))
def test_the_request_fits_whenever_its_whole_parts_do(tokens: int, max_tokens: int) -> None:
    ctx = replace(code_context({1: TREE}, ScriptedLLM(), max_tokens=max_tokens),
                  context_tokens=tokens)
    required = len(request_for(10**9, max_tokens=max_tokens)
                   .split("## How the current version did")[0])  # instruction and task
    required += len(SOLVE) + len(diff_format(["solve.py"])) + 200
    text = request_for(tokens, max_tokens=max_tokens)
    if required <= _request_chars(ctx):
        assert len(text) <= _request_chars(ctx)
    assert "### solve.py" in text and SOLVE in text  # never cut


def test_full_rewrite_is_sized_alike_and_the_window_comes_from_the_config() -> None:
    assert len(request_for(600, FullRewrite())) < len(request_for(None, FullRewrite()))
    assert context_window(LLMConfig(backend="llamacpp", context_size=2048)) == 2048
    assert context_window(LLMConfig(backend="vllm", model="m", max_model_len=32768)) == 32768
    assert context_window(LLMConfig(backend="external", base_url="http://x/v1")) is None
    assert CHARS_PER_TOKEN * 100 == 300
