"""Problem loading: every source normalised to one schema, drops counted, seeded split."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from intervention_training.config import ColumnMap, ProblemsParams
from intervention_training.problems import ProblemSourceError, load_problems

ROWS = [
    {"q": "What is 2+2?", "a": "4", "sol": "2+2=4", "id": "x1"},
    {"q": "What is 3*3?", "a": 9, "sol": "3*3=9", "id": "x2"},
    {"q": "", "a": "1", "sol": "s", "id": "x3"},
    {"q": "No answer here", "a": "", "sol": "s", "id": "x4"},
    {"q": "No solution here", "a": "5", "sol": "  ", "id": "x5"},
    {"q": "What is 2+2?", "a": "4", "sol": "again", "id": "x6"},
    {"q": "Unreadable answer", "a": "BAD", "sol": "s", "id": "x7"},
]
COLS = ColumnMap(problem="q", answer="a", reference_solution="sol")


def params(path, **kw):
    return ProblemsParams(source="file", path=str(path), columns=COLS, eval_fraction=0.0, **kw)


def check(answer):
    return "unparseable" if answer == "BAD" else None


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_normalised_and_drops_counted_by_reason(tmp_path):
    res = load_problems(params(write_jsonl(tmp_path / "p.jsonl", ROWS)), reference_check=check)
    assert res.n_read == 7
    assert dict(res.dropped) == {
        "empty_problem": 1,
        "empty_answer": 1,
        "empty_solution": 1,
        "duplicate": 1,
        "unparseable_answer": 1,
    }
    by_q = {r["problem"]: r for r in res.rows}
    assert set(by_q) == {"What is 2+2?", "What is 3*3?"}
    assert by_q["What is 3*3?"]["answer"] == "9"  # numbers become text
    assert all(r["source"] == "p" and r["split"] == "train" for r in res.rows)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_give_the_same_rows_as_jsonl(tmp_path, fmt):
    rows = [dict(r, a=str(r["a"])) for r in ROWS]
    ref = load_problems(params(write_jsonl(tmp_path / "p.jsonl", rows))).rows
    path = tmp_path / f"p.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import csv

        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    got = load_problems(params(path)).rows
    strip = [{k: v for k, v in r.items() if k != "source"} for r in got]
    assert strip == [{k: v for k, v in r.items() if k != "source"} for r in ref]


def test_id_column_mapping_and_stable_ids(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", ROWS[:2])
    cols = ColumnMap(problem="q", answer="a", reference_solution="sol", problem_id="id")
    p = ProblemsParams(source="file", path=str(path), columns=cols, eval_fraction=0.0)
    assert sorted(r["problem_id"] for r in load_problems(p).rows) == ["x1", "x2"]
    hashed = [r["problem_id"] for r in load_problems(params(path)).rows]
    assert hashed == [r["problem_id"] for r in load_problems(params(path)).rows]
    assert all(h.startswith("p/") for h in hashed)


def test_missing_column_names_file_row_and_column(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"q": "x", "a": "1"}])
    with pytest.raises(ProblemSourceError) as err:
        load_problems(params(path))
    msg = str(err.value)
    assert str(path) in msg and "row 1" in msg and "'sol'" in msg


def test_broken_jsonl_line_is_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(ProblemSourceError, match="line 2"):
        load_problems(params(path))


def test_split_is_seeded_and_independent_of_file_order(tmp_path):
    rows = [{"q": f"Problem {i}", "a": str(i), "sol": "s"} for i in range(40)]
    a = load_problems(params(write_jsonl(tmp_path / "a.jsonl", rows), limit=20))
    (tmp_path / "other").mkdir()
    b = load_problems(params(write_jsonl(tmp_path / "other" / "a.jsonl", rows[::-1]), limit=20))
    p = ProblemsParams(
        source="file",
        path=str(tmp_path / "a.jsonl"),
        columns=COLS,
        eval_fraction=0.25,
        limit=20,
        seed=1,
    )
    c = load_problems(p)
    assert [r["problem"] for r in a.rows] == [r["problem"] for r in b.rows]
    assert len(c.rows) == 20 and sum(r["split"] == "eval" for r in c.rows) == 5
    d = load_problems(p.model_copy(update={"seed": 2}))
    assert {r["problem"] for r in c.rows} != {r["problem"] for r in d.rows}


def test_embedded_champ_set():
    res = load_problems(ProblemsParams(source="champ", eval_fraction=0.25))
    assert res.n_read == 270
    assert len(res.rows) + sum(res.dropped.values()) == 270
    row = res.rows[0]
    assert row["problem_id"].startswith("champ/") and row["reference_solution"]
    assert 0.2 < sum(r["split"] == "eval" for r in res.rows) / len(res.rows) < 0.3


def test_hub_loader_reads_a_local_dataset_folder(tmp_path):
    folder = tmp_path / "hubset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", ROWS[:2])
    p = ProblemsParams(
        source="hub", hub_name=str(folder), split="train", columns=COLS, eval_fraction=0.0
    )
    res = load_problems(p, cache_dir=str(tmp_path / "cache"))
    assert sorted(r["answer"] for r in res.rows) == ["4", "9"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("C(10, 5), or equivalently 252", "252"),
        ("5/14, or approximately 35.7%", "5/14"),
        ("100 (i.e., all values)", "100"),
        ("C(n, 4), or an equivalent form such as n(n-1)(n-2)(n-3)/4!", "n(n-1)(n-2)(n-3)/4!"),
        ("239", "239"),
        ("No integer solutions", "No integer solutions"),
    ],
)
def test_champ_answers_keep_their_last_exact_alternative(raw, expected):
    from intervention_training.problems import champ_answer

    assert champ_answer(raw) == expected


@pytest.mark.parametrize("solution_column", ["reference_solution", "solution"])
def test_paper_problem_set_columns_read_either_solution_spelling(tmp_path, solution_column):
    # configs/paper.yaml reads CMU-AIRe/InT-hard-set; its worked solution is `reference_solution`
    # in the authors' README and `solution` in their notebook: both must load.
    import yaml

    from intervention_training.config import parse_section

    paper = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/paper.yaml").read_text())
    folder = tmp_path / "int-hard-set"
    folder.mkdir()
    rows = [
        {"problem": "What is 2+2?", "answer": "4", solution_column: "2+2=4", "source": "s1"},
        {"problem": "What is 3*3?", "answer": "9", solution_column: "3*3=9", "source": "s2"},
    ]
    write_jsonl(folder / "train.jsonl", rows)
    p = parse_section(paper, "problems").model_copy(update={"hub_name": str(folder)})
    res = load_problems(p, cache_dir=str(tmp_path / "cache"))
    assert sorted(r["reference_solution"] for r in res.rows) == ["2+2=4", "3*3=9"]
    assert all(r["split"] == "train" for r in res.rows)
