"""Built-in procedural benchmarks: arithmetic, word sorting, boolean expressions.

Every example is generated from the benchmark's seed with ``numpy.random``
generators, so the same seed gives the same splits on every machine. Each
split has its own generator; the test split is drawn first, then validation,
then train, each skipping questions already used, so the splits are disjoint
and growing one split never changes the questions of the splits drawn before
it (a larger split extends a smaller one).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from ._answers import AnswerKind, score_output
from ._benchmark import SPLITS, Benchmark, Example
from ._errors import BenchmarkError

_SIZE_DOCS = {
    "seed": "seed of the generator; the same seed gives the same examples everywhere",
    "train_size": "number of examples in the train split",
    "validation_size": "number of examples in the validation split",
    "test_size": "number of examples in the held-out test split",
}
# The order in which splits are drawn (see module docstring), with a salt each.
_DRAW_ORDER = (("test", 3), ("validation", 2), ("train", 1))


def check_split_name(name: str) -> None:
    """Raise ``BenchmarkError`` unless ``name`` is one of ``SPLITS``."""
    if name not in SPLITS:
        raise BenchmarkError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise ``BenchmarkError`` unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BenchmarkError(f"option {name!r} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class _Item:
    question: str
    answer: str
    meta: Mapping[str, object]


class ProceduralBenchmark(Benchmark):
    """Base of the generated benchmarks: seeded, disjoint, cached splits."""

    kind: ClassVar[AnswerKind]
    OPTION_DOCS: ClassVar[Mapping[str, str]]

    def __init__(self, *, seed: int, train_size: int, validation_size: int, test_size: int):
        check_int("seed", seed, 0)
        check_int("train_size", train_size, 0)
        check_int("validation_size", validation_size, 0)
        check_int("test_size", test_size, 0)
        self.seed = seed
        self.sizes = {"train": train_size, "validation": validation_size, "test": test_size}
        self._splits: dict[str, tuple[Example, ...]] | None = None

    @abstractmethod
    def _generate(self, rng: np.random.Generator) -> _Item:
        """One random item; duplicates are filtered by the caller."""

    def split(self, name: str) -> Sequence[Example]:
        check_split_name(name)
        if self._splits is None:
            self._splits = self._build_splits()
        return self._splits[name]

    def score(self, example: Example, output: str) -> float:
        return score_output(output, example.answer, self.kind)

    def _build_splits(self) -> dict[str, tuple[Example, ...]]:
        seen: set[str] = set()
        splits: dict[str, tuple[Example, ...]] = {}
        for split, salt in _DRAW_ORDER:
            size = self.sizes[split]
            rng = np.random.default_rng([self.seed, salt])
            examples: list[Example] = []
            attempts = 0
            while len(examples) < size:
                attempts += 1
                if attempts > 100 * size + 1000:
                    raise BenchmarkError(
                        f"{self.name}: only {len(seen)} distinct questions found for "
                        f"{sum(self.sizes.values())} examples; make the task larger "
                        f"(more operands/words, larger values) or the splits smaller"
                    )
                item = self._generate(rng)
                if item.question in seen:
                    continue
                seen.add(item.question)
                example_id = f"{self.name}/{split}/{len(examples)}"
                meta = MappingProxyType(dict(item.meta))
                examples.append(Example(example_id, item.question, item.answer, meta))
            splits[split] = tuple(examples)
        return splits


def _split_count(rng: np.random.Generator, count: int) -> int:
    """How many of ``count`` leaves go to the left subtree (1..count-1)."""
    return int(rng.integers(1, count))


# ---------------------------------------------------------------- arithmetic

_PRECEDENCE = {"+": 1, "-": 1, "*": 2}


def _arithmetic_tree(
    rng: np.random.Generator, count: int, max_value: int, operators: str
) -> tuple[str, int, int]:
    """A random expression of ``count`` operands: (text, value, precedence)."""
    if count == 1:
        value = int(rng.integers(1, max_value + 1))
        return str(value), value, 3
    left_count = _split_count(rng, count)
    op = operators[int(rng.integers(len(operators)))]
    left, left_value, left_prec = _arithmetic_tree(rng, left_count, max_value, operators)
    right, right_value, right_prec = _arithmetic_tree(rng, count - left_count, max_value, operators)
    prec = _PRECEDENCE[op]
    if left_prec < prec:
        left = f"({left})"
    if right_prec < prec or (right_prec == prec and op == "-"):
        right = f"({right})"
    if op == "+":
        value = left_value + right_value
    elif op == "-":
        value = left_value - right_value
    else:
        value = left_value * right_value
    return f"{left} {op} {right}", value, prec


class ArithmeticBenchmark(ProceduralBenchmark):
    """Multi-step integer arithmetic, e.g. ``What is (17 + 5) * 3 - 8?``."""

    name = "arithmetic"
    kind = "number"
    description = (
        "Evaluate an integer arithmetic expression with +, - and * (multiplication "
        "before addition and subtraction, parentheses first) and give its exact value."
    )
    answer_format = 'End your reply with a final line of the form "Answer: <number>".'
    OPTION_DOCS = MappingProxyType(
        {
            **_SIZE_DOCS,
            "num_operands": "how many numbers each expression has (>= 2)",
            "max_value": "operands are drawn from 1..max_value",
            "operators": "the operators to use, a subset of '+-*'",
        }
    )

    def __init__(
        self,
        *,
        seed: int = 0,
        train_size: int = 200,
        validation_size: int = 50,
        test_size: int = 50,
        num_operands: int = 2,
        max_value: int = 20,
        operators: str = "+-*",
    ):
        super().__init__(
            seed=seed, train_size=train_size, validation_size=validation_size, test_size=test_size
        )
        check_int("num_operands", num_operands, 2)
        check_int("max_value", max_value, 1)
        if not isinstance(operators, str) or not operators or set(operators) - set("+-*"):
            raise BenchmarkError(
                f"option 'operators' must be a non-empty subset of '+-*', got {operators!r}"
            )
        self.num_operands = num_operands
        self.max_value = max_value
        self.operators = "".join(sorted(set(operators), key="+-*".index))

    def _generate(self, rng: np.random.Generator) -> _Item:
        text, value, _ = _arithmetic_tree(rng, self.num_operands, self.max_value, self.operators)
        return _Item(f"What is {text}?", str(value), {"expression": text})


# -------------------------------------------------------------- word sorting

_VOCABULARY = tuple(
    """
    able acid aged also area army away baby back ball band bank base bath bear beat
    bell belt bird blow blue boat body bone book boot born boss both bowl bulk burn
    bush busy cake call calm came camp card care cart case cash cast cell chat chip
    city club coal coat code cold come cook cool copy corn cost crew crop dark data
    date dawn deal dear debt deep desk dial diet disk dock door dose down draw drop
    drum duck dust duty earn east easy edge else even ever face fact fair fall farm
    fast fate fear feed feel file fill film find fine fire firm fish five flag flat
    flow food foot form fort four free frog fuel full fund gain game gate gear gift
    girl give glad goal gold golf good gray grow gulf hair half hall hand hang hard
    harm hate head heat help hero hide high hill hint hold hole home hope horn host
    hour huge hunt idea inch iron item jazz join joke jump jury keen keep kick kind
    king kite knee knot lake lamp land lane last late lead leaf lean left lend lens
    life lift like line link lion list live load loan lock long look lord loss loud
    love luck mail main make mall many mark mass meal meat mild milk mind mine miss
    mode moon more most move much must name navy near neck need nest news next nice
    nine node nose note oven pace pack page pain pair palm park part past path peak
    pear pick pink pipe plan play plot plug poem pole pond pool poor port post pull
    pure push quiz race rail rain rank rare rate read real rent rest rice rich ride
    ring rise risk road rock role roof room root rope rose rule rush safe sail salt
    sand save seat seed self sell ship shoe shop shot show sick side sign silk sing
    site size skin slip slow snow soap sock soft soil song sort soup spot star stay
    step stop suit sure swim tail tale talk tall tank tape task team tell tent term
    test text tide tile time tiny tool tour town tree trip true tube tune turn twin
    type unit vast verb view vote wage wait walk wall warm wash wave weak wear week
    well west wide wife wild wind wine wing wire wise wish wolf wood wool word work
    yard yarn year yoga zero zinc zone
    """.split()
)


class WordSortingBenchmark(ProceduralBenchmark):
    """Sort a short list of words alphabetically; the answer is the sorted list."""

    name = "word_sorting"
    kind = "words"
    description = (
        "Sort a list of English words into alphabetical (dictionary) order and give the "
        "sorted list."
    )
    answer_format = (
        'End your reply with a final line of the form "Answer: <the words in sorted order, '
        'separated by commas>".'
    )
    OPTION_DOCS = MappingProxyType(
        {
            **_SIZE_DOCS,
            "num_words": "how many words each list has (>= 2)",
            "distinct_initials": "if true, the words of a list all start with different letters",
        }
    )

    def __init__(
        self,
        *,
        seed: int = 0,
        train_size: int = 200,
        validation_size: int = 50,
        test_size: int = 50,
        num_words: int = 2,
        distinct_initials: bool = True,
    ):
        super().__init__(
            seed=seed, train_size=train_size, validation_size=validation_size, test_size=test_size
        )
        check_int("num_words", num_words, 2)
        limit = len({word[0] for word in _VOCABULARY}) if distinct_initials else len(_VOCABULARY)
        if num_words > limit:
            raise BenchmarkError(f"option 'num_words' must be <= {limit}, got {num_words}")
        if not isinstance(distinct_initials, bool):
            raise BenchmarkError(
                f"option 'distinct_initials' must be true or false, got {distinct_initials!r}"
            )
        self.num_words = num_words
        self.distinct_initials = distinct_initials

    def _generate(self, rng: np.random.Generator) -> _Item:
        words: list[str] = []
        initials: set[str] = set()
        while len(words) < self.num_words:
            word = _VOCABULARY[int(rng.integers(len(_VOCABULARY)))]
            if word in words or (self.distinct_initials and word[0] in initials):
                continue
            words.append(word)
            initials.add(word[0])
        question = "Sort the following words alphabetically: " + ", ".join(words)
        return _Item(question, ", ".join(sorted(words)), {"words": tuple(words)})


# -------------------------------------------------------- boolean expressions

# precedence in Python: not (3) > and (2) > or (1); literals 4
_BOOL_PRECEDENCE = {"or": 1, "and": 2}


def _boolean_tree(
    rng: np.random.Generator, count: int, not_probability: float
) -> tuple[str, bool, int]:
    """A random expression of ``count`` literals: (text, value, precedence)."""
    if count == 1:
        value = bool(rng.integers(2))
        text, prec = ("True" if value else "False"), 4
    else:
        left_count = _split_count(rng, count)
        op = "and" if rng.integers(2) else "or"
        left, left_value, left_prec = _boolean_tree(rng, left_count, not_probability)
        right, right_value, right_prec = _boolean_tree(rng, count - left_count, not_probability)
        prec = _BOOL_PRECEDENCE[op]
        if left_prec < prec:
            left = f"( {left} )"
        if right_prec < prec:
            right = f"( {right} )"
        value = (left_value and right_value) if op == "and" else (left_value or right_value)
        text = f"{left} {op} {right}"
    if rng.random() < not_probability:
        text = f"not {text}" if prec >= 3 else f"not ( {text} )"
        value, prec = not value, 3
    return text, value, prec


class BooleanExpressionsBenchmark(ProceduralBenchmark):
    """Evaluate expressions like ``not ( True and False ) or False``; answers are balanced."""

    name = "boolean_expressions"
    kind = "boolean"
    description = (
        "Evaluate a Boolean expression built from True, False, not, and, or and parentheses "
        "(not binds tightest, then and, then or) and say whether it is True or False."
    )
    answer_format = (
        'End your reply with a final line of the form "Answer: True" or "Answer: False".'
    )
    OPTION_DOCS = MappingProxyType(
        {
            **_SIZE_DOCS,
            "num_terms": "how many True/False literals each expression has (>= 2)",
            "not_probability": "chance that each literal or sub-expression is negated",
        }
    )

    def __init__(
        self,
        *,
        seed: int = 0,
        train_size: int = 200,
        validation_size: int = 50,
        test_size: int = 50,
        num_terms: int = 3,
        not_probability: float = 0.3,
    ):
        super().__init__(
            seed=seed, train_size=train_size, validation_size=validation_size, test_size=test_size
        )
        check_int("num_terms", num_terms, 2)
        if isinstance(not_probability, bool) or not isinstance(not_probability, int | float):
            raise BenchmarkError(
                f"option 'not_probability' must be a number, got {not_probability!r}"
            )
        if not 0.0 <= not_probability <= 1.0:
            raise BenchmarkError(
                f"option 'not_probability' must be in [0, 1], got {not_probability}"
            )
        self.num_terms = num_terms
        self.not_probability = float(not_probability)

    def _generate(self, rng: np.random.Generator) -> _Item:
        target = bool(rng.integers(2))  # draw the answer first so True/False are balanced
        while True:
            text, value, _ = _boolean_tree(rng, self.num_terms, self.not_probability)
            if value == target:
                break
        question = f"Evaluate the Boolean expression: {text}"
        return _Item(question, str(value), {"expression": text})
