"""The authors' released data sets mapped onto our artifacts (intervention_training.authors_data).

The rows here are written for these tests in the shape the authors' scripts describe (README
Steps 1-2, filter_rollouts / parse_interventions notebooks); the real files were not available.
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from intervention_training.artifacts import read_artifact
from intervention_training.authors_data import (
    HARD_SET_HUB,
    attempts_from_records,
    authors_prefix,
    interventions_from_records,
    load_attempts,
    load_interventions,
    parse_intervention,
    problem_id_for,
    write_authors_data,
)
from intervention_training.sources import ProblemSourceError

TRIANGLE = "A triangle has sides 3, 4 and 5. What is its area?"
DICE = "Two fair dice are rolled. What is the chance the sum is 7?"
ATTEMPT_1 = (
    "Heron's formula applies.\n\nThe semi-perimeter is 6.\n\nSo the area is 12.\n\n\\boxed{12}"
)
ATTEMPT_2 = "It is a right triangle.\n\nArea = 3 * 5 / 2 = 7.5\n\n\\boxed{7.5}"
ATTEMPT_3 = "There are 36 outcomes.\n\nSeven comes up 5 ways.\n\n\\boxed{5/36}"


def base_row(problem: str, attempt: str) -> dict:
    answer = "6" if problem == TRIANGLE else "1/6"
    return {
        "problem": problem,
        "answer": answer,
        "reference_solution": f"The worked solution, ending in {answer}.",
        "source": "made-up",
        "incorrect_attempt": attempt,
    }


def attempt_rows() -> list[dict]:
    return [
        base_row(TRIANGLE, ATTEMPT_1),
        base_row(TRIANGLE, ATTEMPT_2),
        base_row(TRIANGLE, ATTEMPT_1),  # the same text sampled twice
        base_row(DICE, ATTEMPT_3),
        base_row(DICE, "   "),  # nothing to verify
    ]


class WordTokenizer:
    """A stand-in for a chat tokenizer: a visible template, one token per word."""

    def apply_chat_template(self, messages, *, tokenize, add_generation_prompt, **_):
        assert not tokenize and add_generation_prompt
        (msg,) = messages
        return f"<user>{msg['content']}</user><assistant>"

    def encode(self, text, add_special_tokens=True):
        assert not add_special_tokens
        return text.split()


def test_attempts_become_problems_and_rollouts():
    data = attempts_from_records(attempt_rows())
    assert data.n_read == 5 and data.dropped == {"empty_attempt": 1}
    assert [p["problem_id"] for p in data.problems] == [
        problem_id_for(TRIANGLE),
        problem_id_for(DICE),
    ]
    assert data.problems[0]["reference_solution"].startswith("The worked solution")
    assert data.problems[0]["source"] == HARD_SET_HUB
    assert len(data.rollouts) == 4
    ids = [r["rollout_id"] for r in data.rollouts]
    assert len(set(ids)) == 4  # the repeated attempt gets its own id
    for r in data.rollouts:
        assert r["rollout_id"] == f"{r['problem_id']}/{r['sample_id']}"
        assert 0 <= r["sample_id"] < 2**31
        assert r["prompt"] == (TRIANGLE if r["problem_id"] == problem_id_for(TRIANGLE) else DICE)
        assert (r["n_tokens"], r["finish_reason"], r["seed"]) == (0, "stop", -1)


def test_rollout_ids_do_not_depend_on_row_order():
    first = attempts_from_records(attempt_rows()).rollouts
    rows = attempt_rows()
    random.Random(3).shuffle(rows)
    again = attempts_from_records(rows).rollouts

    def ids_by_text(rollouts):
        out = {}
        for r in rollouts:
            out.setdefault(r["completion"], set()).add(r["rollout_id"])
        return out

    assert ids_by_text(first) == ids_by_text(again)


def test_a_tokenizer_renders_the_prompt_and_counts_the_attempt():
    data = attempts_from_records(attempt_rows()[:2], tokenizer=WordTokenizer(), max_new_tokens=14)
    one, two = data.rollouts
    assert one["prompt"] == f"<user>{TRIANGLE}</user><assistant>"
    assert (one["n_tokens"], one["finish_reason"]) == (13, "stop")
    # reached the sampling limit: the attempt was cut off
    assert (two["n_tokens"], two["finish_reason"]) == (15, "length")


def test_the_notebook_solution_column_is_read_and_missing_columns_are_named():
    row = base_row(TRIANGLE, ATTEMPT_1)
    row["solution"] = row.pop("reference_solution")
    data = attempts_from_records([row])
    assert data.problems[0]["reference_solution"].startswith("The worked solution")
    del row["incorrect_attempt"]
    with pytest.raises(ProblemSourceError, match=r"row 1: column 'incorrect_attempt'.*'problem'"):
        attempts_from_records([row])
    with pytest.raises(ProblemSourceError, match="no rows"):
        attempts_from_records([])


@pytest.mark.parametrize(
    "value, status, location, content",
    [
        ({"content": "Use Heron: 6.", "location": 2}, "ok", 2, "Use Heron: 6."),
        ("{'content': 'Check \\\\frac{1}{2}.', 'location': 3}", "ok", 3, "Check \\frac{1}{2}."),
        ('{"content": "Line one\\nline two", "location": 1}', "ok", 1, "Line one\nline two"),
        ({"content": "x", "location": "Substep 2"}, "ok", 2, "x"),
        ({"content": "x", "location": 2.0}, "ok", 2, "x"),
        ({"content": "x", "location": 9}, "location_out_of_range", None, None),
        ({"content": "x", "location": 0}, "location_out_of_range", None, None),
        ({"content": "x", "location": "later"}, "location_not_integer", None, None),
        ({"content": "x", "location": True}, "location_not_integer", None, None),
        ({"content": "x", "location": None}, "missing_location", None, None),
        ({"content": "  ", "location": 1}, "no_error_found", None, None),
        ({"content": 3, "location": 1}, "content_not_string", None, None),
        ({"location": 1}, "missing_content", None, None),
        ("[1, 2]", "not_an_object", None, None),
        ("{'content': ", "invalid_json", None, None),
        (None, "no_block", None, None),
    ],
)
def test_the_intervention_cell_is_parsed(value, status, location, content):
    from intervention_training.intervention_block import STATUSES

    got = parse_intervention(value, n_steps=4)
    assert got[:3] == (status, location, content)
    assert status in STATUSES  # the project parser's own names, so reports count them alike


def authors_guided_attempt(attempt: str, location: int, content: str) -> str:
    """The authors' formula, restated here (parse_interventions cell c550025e l.39-43)."""
    if location == 1:
        return content.replace("\n", "\n\n")
    prefix = "\n\n".join(attempt.split("\n\n")[: location - 1])
    return prefix + "\n\n" + content.replace("\n", "\n\n")


def intervention_rows() -> list[dict]:
    fix = "Heron needs s = (3+4+5)/2,\nthen sqrt(s(s-3)(s-4)(s-5))."
    rows = [
        {**base_row(TRIANGLE, ATTEMPT_1), "intervention": {"content": fix, "location": 3}},
        {
            **base_row(TRIANGLE, ATTEMPT_2),
            "intervention": "{'content': 'Check which side is the hypotenuse.', 'location': 1}",
        },
        {
            **base_row(DICE, ATTEMPT_3),
            "intervention": {"content": "Count again: the answer is 1/6.", "location": 2},
        },
        {**base_row(DICE, ATTEMPT_3), "intervention": {"content": "x", "location": 7}},
    ]
    for row in rows[:2]:
        iv = row["intervention"]
        iv = iv if isinstance(iv, dict) else ast.literal_eval(iv)
        row["intervention_guided_attempt"] = authors_guided_attempt(
            row["incorrect_attempt"], iv["location"], iv["content"]
        )
    rows[2]["intervention_guided_attempt"] = "something else"
    return rows


def test_interventions_map_onto_our_schema_and_build_the_authors_sft_text():
    data = interventions_from_records(intervention_rows())
    a, b, leaked, out_of_range = data.interventions
    assert (a["parse_status"], a["location"], a["kept"]) == ("ok", 3, True)
    assert a["n_steps"] == 4 and a["content"].startswith("Heron needs s = (3+4+5)/2,\nthen")
    assert (b["parse_status"], b["location"], b["kept"]) == ("ok", 1, True)
    # the authors' leak rule: the answer as a substring of the content
    assert (leaked["leaked"], leaked["kept"], leaked["drop_reason"]) == (True, False, "leaked")
    assert "1/6" in leaked["leak_evidence"]
    assert (out_of_range["parse_status"], out_of_range["kept"]) == ("location_out_of_range", False)
    assert out_of_range["drop_reason"] == "location_out_of_range"
    # a second row for the same attempt is its second proposal
    assert leaked["rollout_id"] == out_of_range["rollout_id"]
    assert (leaked["proposal_index"], out_of_range["proposal_index"]) == (0, 1)
    assert out_of_range["proposal_id"] == f"{leaked['rollout_id']}/1"
    assert len(data.rollouts) == 3 and len(data.problems) == 2

    sft_a, sft_b = data.sft
    assert sft_a["prefix"] == "Heron's formula applies.\n\nThe semi-perimeter is 6.\n\n"
    assert sft_a["intervention"] == "Heron needs s = (3+4+5)/2,\n\nthen sqrt(s(s-3)(s-4)(s-5))."
    assert sft_a["completion"] == sft_a["prefix"] + sft_a["intervention"]
    assert sft_a["completion"] == intervention_rows()[0]["intervention_guided_attempt"]
    assert sft_b["prefix"] == "" and sft_b["completion"] == "Check which side is the hypotenuse."
    assert not sft_a["end_of_turn"] and sft_a["proposal_id"] == a["proposal_id"]
    assert data.counts["guided_attempt_mismatch"] == 0  # the leaked row gets no SFT row
    summary = data.summary()
    assert summary["kept"] == 2 and summary["sft"] == 2
    assert summary["parse_status"] == {"location_out_of_range": 1, "ok": 3}


def test_double_newlines_stores_the_inserted_text_as_content():
    data = interventions_from_records(intervention_rows()[:1], double_newlines=True)
    (row,), (sft,) = data.interventions, data.sft
    assert (
        row["content"]
        == sft["intervention"]
        == "Heron needs s = (3+4+5)/2,\n\nthen " + ("sqrt(s(s-3)(s-4)(s-5)).")
    )
    assert sft["completion"] == intervention_rows()[0]["intervention_guided_attempt"]


def test_a_differing_guided_attempt_is_counted():
    rows = intervention_rows()[:1]
    rows[0]["intervention_guided_attempt"] = "not what the formula gives"
    assert interventions_from_records(rows).counts["guided_attempt_mismatch"] == 1


def test_the_same_attempt_has_the_same_rollout_id_in_both_sets():
    attempts = attempts_from_records(attempt_rows())
    interventions = interventions_from_records(intervention_rows())
    by_text = {r["completion"]: r["rollout_id"] for r in reversed(attempts.rollouts)}
    for row in interventions.rollouts:
        assert row["rollout_id"] == by_text[row["completion"]]


def test_authors_substeps_are_an_exact_split():
    attempt = "First.\n\n\n\nThird, after an empty substep.\n\nFourth."
    assert authors_prefix(attempt, 1) == ""
    assert authors_prefix(attempt, 3) == "First.\n\n\n\n"
    with pytest.raises(ValueError):
        authors_prefix(attempt, 5)
    row = {
        **base_row(TRIANGLE, attempt),
        "intervention": {"content": "Fix.", "location": 4},
    }
    data = interventions_from_records([row])
    assert data.interventions[0]["n_steps"] == 4  # the empty piece counts, as the authors count
    assert data.sft[0]["completion"] == authors_guided_attempt(attempt, 4, "Fix.")
    assert data.counts["irregular_steps"] == 1  # our own steps would number these differently


def test_rows_written_validate_against_our_schemas(tmp_path):
    data = interventions_from_records(intervention_rows(), tokenizer=WordTokenizer())
    summary = write_authors_data(data, tmp_path / "out")
    assert summary["rollouts"] == 3
    for name, n in (("problems", 2), ("rollouts", 3), ("interventions", 4), ("sft", 2)):
        table = read_artifact(tmp_path / "out" / f"{name}.parquet", name)
        assert table.num_rows == n
    sft = read_artifact(tmp_path / "out" / "sft.parquet", "sft").to_pylist()
    assert sft[0]["prompt"] == f"<user>{TRIANGLE}</user><assistant>"


def test_loaders_read_a_parquet_file_with_a_struct_column(tmp_path):
    rows = intervention_rows()[:1]
    path = tmp_path / "interventions.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data = load_interventions(path)
    assert data.interventions[0]["location"] == 3 and data.sft
    assert data.source == str(path)


def test_loaders_read_a_data_set_folder_through_load_dataset(tmp_path):
    folder = tmp_path / "InT-hard-set-with-incorrect-attempts"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in attempt_rows()))
    data = load_attempts(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(data.rollouts) == 4 and data.dropped == {"empty_attempt": 1}
    ivs = tmp_path / "ivs"
    ivs.mkdir()
    (ivs / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in intervention_rows()[:2]))
    data = load_interventions(str(ivs), cache_dir=str(tmp_path / "cache"))
    assert [r["location"] for r in data.interventions] == [3, 1]


def test_problem_ids_join_with_the_problems_stage(tmp_path):
    from intervention_training.config import ProblemsParams
    from intervention_training.problems import load_problems

    folder = tmp_path / "hard-set"
    folder.mkdir()
    problems = [{k: v for k, v in r.items() if k != "incorrect_attempt"} for r in attempt_rows()]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in problems[::3]))
    params = ProblemsParams(source="hub", hub_name=str(folder), eval_fraction=0.0)
    ours = {r["problem_id"] for r in load_problems(params, cache_dir=str(tmp_path / "c")).rows}
    theirs = attempts_from_records(attempt_rows(), problem_source=str(folder))
    assert ours == {p["problem_id"] for p in theirs.problems}
    assert Path(str(folder)).name in next(iter(ours))


def test_the_import_script_writes_artifacts_the_project_reads(tmp_path, tiny_model_dir):
    import subprocess
    import sys

    from intervention_training.artifacts import read_artifact

    path = tmp_path / "interventions.parquet"
    pq.write_table(pa.Table.from_pylist(intervention_rows()[:1]), path)
    script = Path(__file__).resolve().parents[1] / "scripts/import_authors_data.py"
    done = subprocess.run(
        [sys.executable, str(script), "interventions", "--out", str(tmp_path / "authors"),
         "--source", str(path), "--model", str(tiny_model_dir), "--double-newlines"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("problems", "rollouts", "interventions", "sft"):
        rows = read_artifact(tmp_path / "authors" / f"{name}.parquet", name).to_pylist()
        assert len(rows) >= 1, name
    sft = read_artifact(tmp_path / "authors/sft.parquet", "sft").to_pylist()
    assert sft[0]["prompt"].startswith("<|im_start|>")  # the tiny model's chat template
