"""Bad problem files and params: a clear error naming file, row and column; exit 2; nothing lost.

Each case runs the real `problems` stage script in a subprocess, over an existing good artifact,
and checks the exit status, the message and that the earlier artifact is byte-for-byte intact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from intervention_training.artifacts import read_artifact

ROOT = Path(__file__).resolve().parents[1]
GOOD = [
    {"problem": "What is 2+2?", "answer": "4", "solution": "2+2=4", "id": "a"},
    {"problem": "What is 3+3?", "answer": "6", "solution": "3+3=6", "id": "b"},
]


def run_stage(tmp_path: Path, source: Path, **problems) -> subprocess.CompletedProcess:
    params = {
        "problems": {
            "source": "file",
            "path": str(source),
            "eval_fraction": 0.0,
            "columns": {"problem_id": "id"},
            **problems,
        }
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/problems.py"),
            "--out",
            str(tmp_path / "out.parquet"),
            "--params",
            str(tmp_path / "params.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def ws(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in GOOD))
    assert run_stage(tmp_path, good).returncode == 0
    return tmp_path


def assert_fails_cleanly(ws: Path, source: Path, *needles: str, **problems) -> None:
    before = (ws / "out.parquet").read_bytes()
    proc = run_stage(ws, source, **problems)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert (ws / "out.parquet").read_bytes() == before
    assert sorted(p.name for p in ws.glob("*.parquet")) == ["out.parquet"]


def jsonl(ws: Path, rows, name="bad.jsonl") -> Path:
    path = ws / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_missing_column(ws):
    rows = [GOOD[0], {"problem": "x", "answer": "1", "id": "c"}]
    assert_fails_cleanly(ws, jsonl(ws, rows), "bad.jsonl", "row 2", "'solution'")


def test_wrong_type(ws):
    rows = [GOOD[0], {**GOOD[1], "answer": {"value": 6}}]
    assert_fails_cleanly(ws, jsonl(ws, rows), "row 2", "'answer'", "dict")


def test_empty_file(ws):
    path = ws / "empty.jsonl"
    path.write_text("")
    assert_fails_cleanly(ws, path, "empty.jsonl", "no rows")


def test_invalid_utf8(ws):
    path = ws / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD[0]).encode() + b"\n" + b'{"problem": "\xff\xfe"}\n')
    assert_fails_cleanly(ws, path, "line 2", "invalid UTF-8")


def test_broken_csv_quoting(ws):
    # the open quote swallows the rest of the row: one field where the header has four
    path = ws / "bad.csv"
    path.write_text('problem,answer,solution,id\n"What is 2+2?,4,2+2=4,a\n')
    assert_fails_cleanly(ws, path, "bad.csv", "none of the 1 rows", "malformed_row")


def test_csv_row_with_extra_fields(ws):
    # a row with the wrong number of fields is the same drop for problems as for benchmarks
    path = ws / "bad.csv"
    path.write_text("problem,answer,solution,id\nWhat?,4,s,a,EXTRA\n")
    assert_fails_cleanly(ws, path, "bad.csv", "none of the 1 rows", "malformed_row")


def test_every_row_unusable(ws):
    rows = [{**GOOD[0], "answer": None}, {**GOOD[1], "problem": ""}]
    assert_fails_cleanly(ws, jsonl(ws, rows), "none of the 2 rows", "empty_answer", "empty_problem")


def test_nulls_empties_duplicates_and_huge_rows_are_counted_drops(ws):
    rows = [
        *GOOD,
        {**GOOD[0], "id": "a"},
        {**GOOD[1], "id": "n", "solution": None},
        {"problem": "x" * (50 * 1024 * 1024), "answer": "1", "solution": "s", "id": "big"},
    ]
    proc = run_stage(ws, jsonl(ws, rows))
    assert proc.returncode == 0, proc.stderr
    assert "duplicate=1" in proc.stderr and "empty_solution=1" in proc.stderr
    assert "too_long=1" in proc.stderr
    assert read_artifact(ws / "out.parquet", "problems").num_rows == 2


@pytest.mark.parametrize(
    "problems, key",
    [
        ({"limit": 0}, "problems.limit"),
        ({"seed": "x"}, "problems.seed"),
        ({"colums": {}}, "problems.colums"),
    ],
)
def test_bad_params_fail_before_work_naming_the_key(ws, problems, key):
    assert_fails_cleanly(ws, ws / "does-not-matter.jsonl", key, **problems)
