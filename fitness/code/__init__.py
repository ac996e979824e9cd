"""The code wing of ``fitness``: benchmarks whose candidates are programs or agents.

A ``CodeBenchmark`` scores a program (or an agent, which calls the task model
through the LLM gateway) by running it in a sandbox and reading its output with
a trusted scorer; ``ProgramEvaluator`` runs the jobs. Build one by kind name
with ``make_code_benchmark("circle_packing")``; a new kind is one more class in
``_registry.py``. The guest files under ``guest/`` run inside the sandbox.
"""

from ._benchmark import CodeBenchmark, EvaluationEnv
from ._bin_packing import BinPackingBenchmark, BinPackingTask
from ._circle_packing import CirclePackingBenchmark, CirclePackingTask
from ._humaneval import HumanEvalAgentBenchmark
from ._program_eval import (
    FunctionCallTask,
    ProgramEvaluation,
    ProgramEvaluator,
    ProgramResult,
    ProgramTask,
)
from ._registry import CODE_BENCHMARK_KINDS, code_benchmark_options, make_code_benchmark
from ._user_benchmark import DirectoryBenchmark

__all__ = [
    "CODE_BENCHMARK_KINDS",
    "BinPackingBenchmark",
    "BinPackingTask",
    "CirclePackingBenchmark",
    "CirclePackingTask",
    "CodeBenchmark",
    "DirectoryBenchmark",
    "EvaluationEnv",
    "FunctionCallTask",
    "HumanEvalAgentBenchmark",
    "ProgramEvaluation",
    "ProgramEvaluator",
    "ProgramResult",
    "ProgramTask",
    "code_benchmark_options",
    "make_code_benchmark",
]
