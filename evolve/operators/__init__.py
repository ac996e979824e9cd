"""Mutation operators (Promptbreeder's set), the initial population, and the operators' base.

Every operator is a frozen dataclass whose fields are its options (each with a
default and a one-line doc); ``OPERATORS`` maps a config name to the class and
``operator_options`` lists the options for documentation and validation.
The operators that change programs are the code wing's (``evolve.code.operators``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .._schema import registry_options
from ._applicable import NotApplicable
from ._base import (
    SYSTEM_PROMPT,
    InvalidChild,
    Mutation,
    MutationContext,
    MutatorLLM,
    Operator,
    PromptOperator,
    Transcript,
    pick,
)
from ._context_shuffle import ContextShuffle
from ._crossover import Crossover
from ._direct import FirstOrderDirect, ZeroOrderDirect
from ._donor import draw_member
from ._eda import EDA, EDARankIndex
from ._hyper import FirstOrderHyper, ZeroOrderHyper
from ._init_population import (
    default_hyper_mutation_prompts,
    default_mutation_prompts,
    default_thinking_styles,
    initial_population,
    read_lines,
)
from ._lamarck import Lamarckian
from ._lineage import Lineage
from ._text import clean_prompt, normalise, same_text, similarity

OPERATORS: Mapping[str, type[Operator]] = MappingProxyType({
    cls.name: cls
    for cls in (ZeroOrderDirect, FirstOrderDirect, EDA, EDARankIndex, Lineage, ZeroOrderHyper,
                FirstOrderHyper, Lamarckian, Crossover, ContextShuffle)
})


def operator_options(name: str) -> dict[str, tuple[Any, str]]:
    """``{option: (default, doc)}`` of the operator called ``name``."""
    return registry_options(OPERATORS, "operator", name)


__all__ = [
    "EDA",
    "OPERATORS",
    "SYSTEM_PROMPT",
    "ContextShuffle",
    "Crossover",
    "EDARankIndex",
    "FirstOrderDirect",
    "FirstOrderHyper",
    "InvalidChild",
    "Lamarckian",
    "Lineage",
    "Mutation",
    "MutationContext",
    "MutatorLLM",
    "NotApplicable",
    "Operator",
    "PromptOperator",
    "Transcript",
    "ZeroOrderDirect",
    "ZeroOrderHyper",
    "clean_prompt",
    "draw_member",
    "default_hyper_mutation_prompts",
    "default_mutation_prompts",
    "default_thinking_styles",
    "initial_population",
    "normalise",
    "operator_options",
    "pick",
    "read_lines",
    "same_text",
    "similarity",
]
