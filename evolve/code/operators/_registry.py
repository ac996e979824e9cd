"""The code operators by config name, their options, and the shipped code lexicons.

``CODE_OPERATORS`` maps a config name to the class (every class is a frozen
dataclass whose fields are its options, each with a default and a one-line
doc); ``code_operator_options`` lists the options for documentation and
validation, as ``operator_options`` does for the prompt operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..._schema import registry_options
from ...operators import read_lines
from ._base import CodeOperator
from ._diff_edit import DiffEdit
from ._full_rewrite import FullRewrite
from ._hyper_diff import HyperDiff
from ._merge import Merge
from ._self_modify import SelfModify

#: the shipped lexicons of the code operators
DATA_DIR = Path(__file__).resolve().parents[1] / "data"

CODE_OPERATORS: Mapping[str, type[CodeOperator]] = MappingProxyType({
    cls.name: cls for cls in (DiffEdit, FullRewrite, Merge, HyperDiff, SelfModify)
})


def code_operator_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the code operator called ``name``."""
    return registry_options(CODE_OPERATORS, "code operator", name)


def default_code_mutation_prompts() -> tuple[str, ...]:
    """The shipped code mutation prompts (``evolve/code/data/mutation_prompts.txt``)."""
    return read_lines(DATA_DIR / "mutation_prompts.txt")


def default_code_hyper_mutation_prompts() -> tuple[str, ...]:
    """The shipped code hyper-mutation prompts (``evolve/code/data/hyper_mutation_prompts.txt``)."""
    return read_lines(DATA_DIR / "hyper_mutation_prompts.txt")
