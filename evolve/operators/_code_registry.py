"""The code operators by config name, their options, and the shipped code lexicons.

``CODE_OPERATORS`` maps a config name to the class (every class is a frozen
dataclass whose fields are its options, each with a default and a one-line
doc); ``code_operator_options`` lists the options for documentation and
validation, as ``operator_options`` does for the prompt operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._schema import registry_options
from ._code_base import CodeOperator
from ._code_edit import DiffEdit
from ._code_hyper import HyperDiff
from ._code_merge import Merge
from ._code_rewrite import FullRewrite
from ._code_self_modify import SelfModify
from ._init_population import DATA_DIR, read_lines

CODE_OPERATORS: Mapping[str, type[CodeOperator]] = MappingProxyType({
    cls.name: cls for cls in (DiffEdit, FullRewrite, Merge, HyperDiff, SelfModify)
})


def code_operator_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the code operator called ``name``."""
    return registry_options(CODE_OPERATORS, "code operator", name)


def default_code_mutation_prompts() -> tuple[str, ...]:
    """The shipped code mutation prompts (``data/code_mutation_prompts.txt``)."""
    return read_lines(DATA_DIR / "code_mutation_prompts.txt")


def default_code_hyper_mutation_prompts() -> tuple[str, ...]:
    """The shipped code hyper-mutation prompts (``data/code_hyper_mutation_prompts.txt``)."""
    return read_lines(DATA_DIR / "code_hyper_mutation_prompts.txt")
