"""JSONL benchmarks: loading, splitting, clear errors, and GSM8K."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fitness import SPLITS, BenchmarkError, JsonlBenchmark, make_benchmark

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "train.jsonl").is_file(),
    reason=f"needs the GSM8K data beside the project at {GSM8K} (see shared/data/README.md)",
)


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture
def numbers_file(tmp_path: Path) -> Path:
    records = [{"question": f"What is {n} + {n}?", "answer": str(2 * n)} for n in range(100)]
    return write_jsonl(tmp_path / "numbers.jsonl", records)


def test_one_file_is_split_by_fraction_disjointly_and_deterministically(numbers_file: Path) -> None:
    bench = JsonlBenchmark(numbers_file, validation_fraction=0.2, test_fraction=0.1, seed=5)
    sizes = [len(bench.split(name)) for name in SPLITS]
    assert sizes == [70, 20, 10]
    ids = [example.id for name in SPLITS for example in bench.split(name)]
    assert len(set(ids)) == 100
    again = JsonlBenchmark(numbers_file, validation_fraction=0.2, test_fraction=0.1, seed=5)
    other = JsonlBenchmark(numbers_file, validation_fraction=0.2, test_fraction=0.1, seed=6)
    assert [bench.split(name) for name in SPLITS] == [again.split(name) for name in SPLITS]
    assert bench.split("test") != other.split("test")


def test_examples_carry_id_question_answer_and_meta(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [{"question": "2+2?", "answer": 4, "source": "x"}, {"question": "1+1?", "answer": 2}],
    )
    bench = JsonlBenchmark(path, validation_fraction=0.0, test_fraction=0.0)
    by_id = {example.id: example for example in bench.split("train")}
    assert set(by_id) == {"q:1", "q:2"}
    assert by_id["q:1"].question == "2+2?"
    assert by_id["q:1"].answer == "4"
    assert dict(by_id["q:1"].meta) == {"source": "x"}


def test_sizes_cap_splits(numbers_file: Path) -> None:
    bench = JsonlBenchmark(numbers_file, train_size=5, test_size=3)
    assert [len(bench.split(name)) for name in SPLITS] == [5, 10, 3]
    full = JsonlBenchmark(numbers_file)
    assert bench.split("train") == full.split("train")[:5]


def test_split_files_keep_their_order_and_carve_validation_from_train(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"q": f"t{n}", "a": "yes"} for n in range(20)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"q": f"s{n}", "a": "no"} for n in range(5)])
    bench = JsonlBenchmark(
        train_path=train,
        test_path=test,
        question_field="q",
        answer_field="a",
        kind="text",
        validation_fraction=0.25,
    )
    assert [example.question for example in bench.split("test")] == [f"s{n}" for n in range(5)]
    assert len(bench.split("validation")) == 5
    assert len(bench.split("train")) == 15
    train_questions = {example.question for example in bench.split("train")}
    assert train_questions.isdisjoint(example.question for example in bench.split("validation"))
    example = bench.split("test")[0]
    assert bench.score(example, "Answer: No.") == 1.0
    assert bench.score(example, "Answer: yes") == 0.0


def test_answer_pattern_extracts_the_answer(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "g.jsonl", [{"question": "q", "answer": "3 * 4 = 12\nthen 1,000\n#### 1,000"}]
    )
    bench = JsonlBenchmark(
        path, answer_pattern=r"####\s*(.+)$", validation_fraction=0.0, test_fraction=0.0
    )
    example = bench.split("train")[0]
    assert example.answer == "1,000"
    assert bench.score(example, "so 1000 dollars.\nAnswer: $1000") == 1.0
    assert bench.score(example, "Answer: 12") == 0.0


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    bench = JsonlBenchmark(tmp_path / "nope.jsonl")
    with pytest.raises(BenchmarkError, match=r"benchmark file not found: .*nope\.jsonl"):
        bench.split("train")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "a", "answer": "1"}', "{not json"], r"bad\.jsonl:2: not valid JSON"),
        (['{"question": "a", "answer": "1"}', "", "[1]"], r"bad\.jsonl:3: expected a JSON object"),
        (['{"question": "a"}'], r"bad\.jsonl:1: no field 'answer' \(fields: question\)"),
        (['{"answer": "1"}'], r"bad\.jsonl:1: no field 'question'"),
        (['{"question": null, "answer": "1"}'], r"bad\.jsonl:1: field 'question' must be"),
        ([""], r"has no examples"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=message):
        JsonlBenchmark(path).split("train")


def test_answer_pattern_that_does_not_match_names_the_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [{"question": "q", "answer": "#### 1"}] * 2 + [{"question": "q", "answer": "no marker"}],
    )
    with pytest.raises(BenchmarkError, match=r"g\.jsonl:3: answer_pattern"):
        JsonlBenchmark(path, answer_pattern=r"####\s*(.+)$").split("test")


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "question": "q", "answer": "1"}] * 3)
    with pytest.raises(BenchmarkError, match="example id '1' occurs more than once"):
        JsonlBenchmark(path, id_field="id").split("train")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of 'path' or 'train_path'"),
        ({"path": "a", "train_path": "b"}, "exactly one of"),
        ({"path": "a", "test_path": "b"}, "not both"),
        ({"path": "a", "kind": "fuzzy"}, "unknown answer kind"),
        ({"path": "a", "test_fraction": 1.0}, "test_fraction"),
        ({"path": "a", "test_fraction": 0.5, "validation_fraction": 0.5}, "below 1"),
        ({"path": "a", "answer_pattern": "(a)(b)"}, "exactly one group"),
        ({"path": "a", "answer_pattern": "(a"}, "answer_pattern"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        JsonlBenchmark(**options)  # type: ignore[arg-type]


def test_constructor_reads_nothing(tmp_path: Path) -> None:
    """The file is read at the first split(), not when the benchmark is built."""
    path = tmp_path / "does-not-exist-yet.jsonl"
    bench = JsonlBenchmark(path, validation_fraction=0.0, test_fraction=0.0)  # no error yet
    assert not path.exists()
    with pytest.raises(BenchmarkError, match="benchmark file not found"):
        bench.split("train")
    # the file as it is at the first split() that finds it, not as it was at construction
    other = tmp_path / "other.jsonl"
    write_jsonl(other, [{"question": "old?", "answer": "0"}])
    late = JsonlBenchmark(other, validation_fraction=0.0, test_fraction=0.0)
    write_jsonl(path, [{"question": "1+1?", "answer": "2"}])
    write_jsonl(other, [{"question": "new?", "answer": "1"}, {"question": "2+2?", "answer": 4}])
    assert [(e.question, e.answer) for e in bench.split("train")] == [("1+1?", "2")]
    assert [(e.question, e.answer) for e in late.split("train")] == [("new?", "1"), ("2+2?", "4")]


@needs_gsm8k
def test_gsm8k_loads_with_its_answer_pattern() -> None:
    bench = make_benchmark(
        "jsonl",
        train_path=str(GSM8K / "train.jsonl"),
        test_path=str(GSM8K / "test.jsonl"),
        answer_pattern=r"####\s*(.+)$",
        validation_fraction=0.1,
        name="gsm8k",
    )
    train, validation, test = (bench.split(name) for name in SPLITS)
    assert len(test) == 1319
    assert len(train) + len(validation) == 7473
    assert len(validation) == 747
    first = test[0]
    assert first.id == "test:1"
    assert first.question.startswith("Janet")
    assert first.answer == "18"
    assert bench.score(first, "She sells 9 eggs for $2 each.\nAnswer: $18") == 1.0
    assert bench.score(first, "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars") == 1.0
    assert bench.score(first, "Answer: 9\n(16 - 3 - 4 = 9, times 2 is 18)") == 0.0
    # answers with thousands separators compare as numbers
    comma = next(e for e in train if "," in e.answer)
    assert bench.score(comma, f"Answer: {comma.answer.replace(',', '')}") == 1.0
    ids = {e.id for split in (train, validation, test) for e in split}
    assert len(ids) == 7473 + 1319
