"""Mutation operators (Promptbreeder's set), the initial population, and code operators.

Every operator is a frozen dataclass whose fields are its options (each with a
default and a one-line doc); ``OPERATORS`` maps a config name to the class and
``operator_options`` lists the options for documentation and validation.
``CODE_OPERATORS`` and ``code_operator_options`` do the same for the operators
that change programs (``CodeOperator``, given a ``CodeMutationContext``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._schema import registry_options
from ._base import (
    SYSTEM_PROMPT,
    InvalidChild,
    Mutation,
    MutationContext,
    MutatorLLM,
    Operator,
    PromptOperator,
    Transcript,
)
from ._code_base import (
    CODE_SYSTEM_PROMPT,
    CodeMutation,
    CodeMutationContext,
    CodeOperator,
)
from ._code_edit import DiffEdit
from ._code_hyper import HyperDiff
from ._code_merge import Merge
from ._code_registry import (
    CODE_OPERATORS,
    code_operator_options,
    default_code_hyper_mutation_prompts,
    default_code_mutation_prompts,
)
from ._code_rewrite import FullRewrite
from ._code_self_modify import SelfModify
from ._context_shuffle import ContextShuffle
from ._crossover import Crossover
from ._direct import FirstOrderDirect, ZeroOrderDirect
from ._eda import EDA, EDARankIndex
from ._hyper import FirstOrderHyper, ZeroOrderHyper
from ._init_population import (
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
    initial_population,
)
from ._lamarck import Lamarckian
from ._lineage import Lineage
from ._text import clean_prompt, similarity

OPERATORS: Mapping[str, type[Operator]] = MappingProxyType({
    cls.name: cls
    for cls in (ZeroOrderDirect, FirstOrderDirect, EDA, EDARankIndex, Lineage, ZeroOrderHyper,
                FirstOrderHyper, Lamarckian, Crossover, ContextShuffle)
})


def operator_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the operator called ``name``."""
    return registry_options(OPERATORS, "operator", name)


__all__ = [
    "CODE_OPERATORS",
    "CODE_SYSTEM_PROMPT",
    "EDA",
    "OPERATORS",
    "SYSTEM_PROMPT",
    "SelfModify",
    "CodeMutation",
    "CodeMutationContext",
    "CodeOperator",
    "ContextShuffle",
    "Crossover",
    "DiffEdit",
    "EDARankIndex",
    "FirstOrderDirect",
    "FirstOrderHyper",
    "FullRewrite",
    "HyperDiff",
    "InvalidChild",
    "Lamarckian",
    "Lineage",
    "Merge",
    "Mutation",
    "MutationContext",
    "MutatorLLM",
    "Operator",
    "PromptOperator",
    "Transcript",
    "ZeroOrderDirect",
    "ZeroOrderHyper",
    "clean_prompt",
    "code_operator_options",
    "default_code_hyper_mutation_prompts",
    "default_code_mutation_prompts",
    "default_hyper_mutation_prompts",
    "default_mutation_prompts",
    "default_thinking_styles",
    "initial_population",
    "operator_options",
    "similarity",
]
