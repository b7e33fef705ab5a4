"""Bad benchmark files: a clear error naming file, row and column, or a counted drop."""

from __future__ import annotations

import json

import pytest

from intervention_training.config import BenchmarkSpec
from intervention_training.evaluation.benchmarks import load_benchmark
from intervention_training.problems import ProblemSourceError

GOOD = [
    {"id": "a", "problem": "What is 2+2?", "answer": "4"},
    {"id": "b", "problem": "What is 3+3?", "answer": "6"},
]


def spec(path, **kw) -> BenchmarkSpec:
    return BenchmarkSpec(name="b", source="file", path=str(path), **kw)


def jsonl(tmp_path, rows, name="b.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fails(path, *needles, **kw):
    with pytest.raises(ProblemSourceError) as err:
        load_benchmark(spec(path, **kw))
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_missing_column(tmp_path):
    fails(jsonl(tmp_path, [GOOD[0], {"id": "c", "problem": "x"}]), "b.jsonl", "row 2", "answer")


def test_wrong_type(tmp_path):
    fails(jsonl(tmp_path, [GOOD[0], {**GOOD[1], "answer": {"v": 6}}]), "row 2", "'answer'")


def test_empty_file(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("")
    fails(path, "b.jsonl", "no rows")
    csv_path = tmp_path / "b.csv"
    csv_path.write_text("")
    fails(csv_path, "b.csv", "no rows")


def test_invalid_utf8(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + b'{"problem": "\xff"}\n')
    fails(path, "line 2", "UTF-8")
    csv_path = tmp_path / "b.csv"
    csv_path.write_bytes(b"problem,answer\n\xff\xfe,1\n")
    fails(csv_path, "b.csv", "UTF-8")


def test_broken_csv_rows_are_counted_drops(tmp_path):
    path = tmp_path / "b.csv"
    path.write_text(
        'problem,answer\nWhat is 2+2?,4\n"broken, "quote" here,5,extra\nWhat is 3+3?,6\n'
    )
    bench = load_benchmark(spec(path))
    assert [r["answer"] for r in bench.rows] == ["4", "6"]
    assert bench.dropped["malformed_row"] == 1


def test_nulls_empties_and_duplicates_are_counted_drops(tmp_path):
    rows = [
        *GOOD,
        {**GOOD[0]},
        {"id": "n", "problem": None, "answer": "1"},
        {"id": "e", "problem": "Q?", "answer": ""},
    ]
    bench = load_benchmark(spec(jsonl(tmp_path, rows)))
    assert len(bench.rows) == 2
    assert dict(bench.dropped) == {"duplicate": 1, "empty_problem": 1, "empty_answer": 1}


def test_no_usable_row(tmp_path):
    fails(jsonl(tmp_path, [{"problem": "", "answer": "1"}]), "none of the 1 rows", "empty_problem")
