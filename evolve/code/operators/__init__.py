"""The code operators: what makes a child program from its parents.

Every operator is a frozen dataclass whose fields are its options (each with a
default and a one-line doc), given a ``CodeMutationContext``; ``CODE_OPERATORS``
maps a config name to the class and ``code_operator_options`` lists the options
for documentation and validation, as ``evolve.operators`` does for prompts.
"""

from ._base import CODE_SYSTEM_PROMPT, CodeMutation, CodeMutationContext, CodeOperator
from ._diff_edit import DiffEdit
from ._full_rewrite import FullRewrite
from ._hyper_diff import HyperDiff
from ._merge import Merge
from ._registry import (
    CODE_OPERATORS,
    code_operator_options,
    default_code_hyper_mutation_prompts,
    default_code_mutation_prompts,
)
from ._self_modify import SelfModify

__all__ = [
    "CODE_OPERATORS",
    "CODE_SYSTEM_PROMPT",
    "CodeMutation",
    "CodeMutationContext",
    "CodeOperator",
    "DiffEdit",
    "FullRewrite",
    "HyperDiff",
    "Merge",
    "SelfModify",
    "code_operator_options",
    "default_code_hyper_mutation_prompts",
    "default_code_mutation_prompts",
]
