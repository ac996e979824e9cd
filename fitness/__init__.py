"""How candidates are judged: benchmarks with fixed splits, evaluators and trusted scoring.

Build a benchmark by kind (``make_benchmark("arithmetic", seed=1)``) or
directly, and score task prompts on its examples with ``PromptEvaluator``.
The answer-format line and the scorer belong to the benchmark, outside the
reach of the prompt under evolution.
"""

from ._answers import (
    ANSWER_KINDS,
    AnswerKind,
    answer_line,
    answers_match,
    extract_answer,
    normalize_text,
    parse_boolean,
    parse_number,
    parse_words,
    score_output,
)
from ._benchmark import SPLITS, Benchmark, Example
from ._errors import BenchmarkError
from ._jsonl import JsonlBenchmark
from ._procedural import (
    ArithmeticBenchmark,
    BooleanExpressionsBenchmark,
    ProceduralBenchmark,
    WordSortingBenchmark,
)
from ._prompt_eval import (
    ChatResponse,
    Evaluation,
    ExampleResult,
    PromptEvaluator,
    TaskModel,
    render_messages,
)
from ._reasoning_gym import ReasoningGymBenchmark, extract_reasoning_gym_answer
from ._registry import (
    BENCHMARK_KINDS,
    REQUIRED,
    BenchmarkOption,
    benchmark_options,
    make_benchmark,
)

__all__ = [
    "ANSWER_KINDS",
    "BENCHMARK_KINDS",
    "REQUIRED",
    "SPLITS",
    "AnswerKind",
    "ArithmeticBenchmark",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkOption",
    "BooleanExpressionsBenchmark",
    "ChatResponse",
    "Evaluation",
    "Example",
    "ExampleResult",
    "JsonlBenchmark",
    "ProceduralBenchmark",
    "PromptEvaluator",
    "ReasoningGymBenchmark",
    "TaskModel",
    "WordSortingBenchmark",
    "answer_line",
    "answers_match",
    "benchmark_options",
    "extract_answer",
    "extract_reasoning_gym_answer",
    "make_benchmark",
    "normalize_text",
    "parse_boolean",
    "parse_number",
    "parse_words",
    "render_messages",
    "score_output",
]
