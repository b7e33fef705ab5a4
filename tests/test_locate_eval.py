"""Tests for intervention_training.locate_eval: CHAMP's first-wrong-step annotations as an
evaluation set, the scoring of predicted steps, and the baselines.

The real-data tests read the CHAMP JSON shipped in the installed ``champ-dataset`` package; the
counts they assert were found by reading that file (v0, package 1.0.0).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from typing import Any

import pytest

from intervention_training.locate_eval import (
    always_first,
    load_annotated,
    prior_by_position,
    relative_position,
    sample_items,
    score_prediction,
    summarise,
    uniform_random,
    with_predictions,
)
from intervention_training.problems import champ_path
from intervention_training.steps import split_steps, step_spans

RATES = ("exact", "too_early", "too_late", "no_parse", "within_one")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """CHAMP's JSON as stored, for counts computed without the module under test."""
    return json.loads(champ_path().read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return load_annotated()


def by_id(rows: list[dict[str, Any]], item_id: str) -> dict[str, Any]:
    (row,) = [r for r in rows if r["item_id"] == item_id]
    return row


# --- the real annotations ---------------------------------------------------------------------


def test_counts_match_the_raw_file(raw, rows):
    notes = [n for p in raw["problems"].values() for n in p["fws_annotations"].values()]
    with_span = [n for n in notes if n["start_idx"] is not None]
    assert len(raw["problems"]) == 270
    assert len(notes) == 540
    assert len(with_span) == 444
    assert len(rows) == 444
    assert len({r["item_id"] for r in rows}) == 444
    assert Counter(r["author"] for r in rows) == {
        "PaLM 2 Medium": 135,
        "GPT-3.5": 119,
        "GPT-4": 101,
        "GPT-4 Turbo": 89,
    }
    assert Counter(r["prompt_setting"] for r in rows) == {"No C w/o H": 238, "Direct C w/ H": 206}
    # "No mistake" (no span) is mostly the stronger models' verdict.
    no_span = Counter(n["author"] for n in notes if n["start_idx"] is None)
    assert no_span == {"GPT-4 Turbo": 45, "GPT-4": 35, "GPT-3.5": 15, "PaLM 2 Medium": 1}


def test_rows_carry_the_annotated_string_and_the_problem(raw, rows):
    for row in rows:
        ident = row["problem_id"].removeprefix("champ/")
        key = row["item_id"].split("|", 1)[1]
        note = raw["problems"][ident]["fws_annotations"][key]
        assert row["solution"] == note["text"]
        assert row["span_text"] == row["solution"][row["span_start"] : row["span_end"]]
        assert row["problem"] == raw["problems"][ident]["_text"]
        assert row["author"] == key.split("|")[0]
        assert row["reference_solution"] and row["answer"]
        assert row["n_steps"] == len(split_steps(row["solution"]))


def test_every_span_start_is_in_exactly_one_step_and_the_end_step_is_recorded(rows):
    for row in rows:
        span = row["span_text"]
        first = row["span_start"] + len(span) - len(span.lstrip())
        last = row["span_end"] - (len(span) - len(span.rstrip())) - 1
        spans = step_spans(row["solution"])
        holding_first = [k for k, (s, e) in enumerate(spans, 1) if s <= first < e]
        holding_last = [k for k, (s, e) in enumerate(spans, 1) if s <= last < e]
        assert holding_first == [row["annotated_step"]]
        assert holding_last == [row["end_step"]]
        assert row["span_in_one_step"] == (row["annotated_step"] == row["end_step"])


def test_most_spans_fit_one_step_the_rest_straddle_a_blank_line(rows):
    """The claim "every span lies in one blank-line step" does not hold: 137 of 444 spans cross a
    blank line (typically a lead-in such as "This can be rewritten as:" plus the display under
    it). The other 307 lie inside the annotated step."""
    one = [r for r in rows if r["span_in_one_step"]]
    across = [r for r in rows if not r["span_in_one_step"]]
    assert (len(one), len(across)) == (307, 137)
    for row in one:
        assert row["span_text"].strip() in split_steps(row["solution"])[row["annotated_step"] - 1]
    for row in across:
        assert re.search(r"\n\s*\n", row["span_text"].strip())
        assert row["end_step"] > row["annotated_step"]
    assert Counter(r["end_step"] - r["annotated_step"] for r in across) == {
        1: 129,
        2: 5,
        3: 2,
        4: 1,
    }


def test_relative_positions(rows):
    assert all(0 <= r["relative_position"] <= 1 for r in rows)
    assert statistics.median(r["relative_position"] for r in rows) == 0.25
    # The same median as step / n_steps (1 for the last step) is 5/14 = 0.357.
    assert statistics.median(r["annotated_step"] / r["n_steps"] for r in rows) == 5 / 14
    assert statistics.median(r["n_steps"] for r in rows) == 13
    assert sum(r["n_steps"] == 1 for r in rows) == 5
    assert all(r["relative_position"] == 0 for r in rows if r["n_steps"] == 1)


# Read by hand: the problem, the model's steps and the annotated span.
HAND_CHECKED = [
    # f(n) = f(n-2) for strings ending in 1 is wrong (it should use the count ending in 1 or 2).
    (
        "champ/P_Combinatorics_1|GPT-3.5|No C w/o H",
        12,
        5,
        5,
        "If the last digit is 1, then the second-to-last digit can be either 1 or 2.",
    ),
    # Catalan numbers are the wrong count (parking functions: (n+1)^(n-1)). CHAMP's span ends
    # with a blank that lies past step 1; the span's last non-blank character is in step 1.
    (
        "champ/P_Combinatorics_12|GPT-4|No C w/o H",
        7,
        1,
        1,
        "is given by the nth Catalan number.",
    ),
    # The sign of (1-3)^n's expansion: the binomial-theorem step for E(n) - O(n).
    (
        "champ/P_Combinatorics_23|GPT-4 Turbo|Direct C w/ H",
        11,
        7,
        7,
        "(1-3)^n = (-2)^n = C(n,0)1^n*(-3)^0",
    ),
    # A lead-in and the wrong identity under it: the span covers steps 4 and 5.
    (
        "champ/P_Number-Theory_9|GPT-4|No C w/o H",
        11,
        4,
        5,
        "This can be rewritten as:",
    ),
    # The wrong factorisation x^8+x^4+1 = (x^4+1)(x^4-1), after its lead-in (steps 1 and 2).
    (
        "champ/P_Polynomial_18|PaLM 2 Medium|No C w/o H",
        18,
        1,
        2,
        "We can factor $x^8+x^4+1$ as follows:",
    ),
]


@pytest.mark.parametrize(("item_id", "n_steps", "step", "end_step", "fragment"), HAND_CHECKED)
def test_hand_checked_items(rows, item_id, n_steps, step, end_step, fragment):
    row = by_id(rows, item_id)
    steps = split_steps(row["solution"])
    assert (row["n_steps"], row["annotated_step"], row["end_step"]) == (n_steps, step, end_step)
    assert fragment in steps[step - 1]
    assert fragment in row["span_text"]
    if step == end_step:
        assert row["span_text"].strip() in steps[step - 1]


def test_hand_checked_straddling_spans_end_in_the_display(rows):
    nt9 = by_id(rows, "champ/P_Number-Theory_9|GPT-4|No C w/o H")
    assert split_steps(nt9["solution"])[4] == "(x - yz)^2 + (y - xz)^2 + (z - xy)^2 = 0"
    assert nt9["span_text"].endswith("(x - yz)^2 + (y - xz)^2 + (z - xy)^2 = 0")
    p18 = by_id(rows, "champ/P_Polynomial_18|PaLM 2 Medium|No C w/o H")
    assert split_steps(p18["solution"])[1] == "$$x^8+x^4+1 = (x^4+1)(x^4-1)$$"


# --- scoring --------------------------------------------------------------------------------------


def test_score_prediction_outcomes():
    assert score_prediction(2, 2) == "exact"
    assert score_prediction(1, 2) == "too_early"
    assert score_prediction(3, 2) == "too_late"
    assert score_prediction(None, 2) == "no_parse"
    # With the whole span accepted, every step the span touches is exact.
    assert [score_prediction(p, 2, 3) for p in (1, 2, 3, 4)] == [
        "too_early",
        "exact",
        "exact",
        "too_late",
    ]


@pytest.mark.parametrize("bad", [0, -1, True, 1.0, 2.0, "2"])
def test_score_prediction_rejects_non_steps(bad):
    with pytest.raises(ValueError, match="predicted step"):
        score_prediction(bad, 2)


def constructed() -> list[dict[str, Any]]:
    """Predictions [1, 3, None, 5] against annotated steps [1, 2, 2, 5]; authors A, A, B, B."""
    return [
        {"item_id": str(i), "author": a, "annotated_step": s, "end_step": s, "predicted": p}
        for i, (a, s, p) in enumerate(zip("AABB", [1, 2, 2, 5], [1, 3, None, 5], strict=True))
    ]


def rates(group: dict[str, Any]) -> dict[str, float]:
    return {name: group[name]["rate"] for name in RATES}


def test_summarise_constructed_case():
    summary = summarise(constructed(), n_boot=200)
    assert summary["overall"]["n"] == 4
    # Hand-computed: exact 1 and 5; too late 3 > 2; no parse None; within one 1, 3 and 5.
    assert rates(summary["overall"]) == {
        "exact": 2 / 4,
        "too_early": 0.0,
        "too_late": 1 / 4,
        "no_parse": 1 / 4,
        "within_one": 3 / 4,
    }
    assert rates(summary["by_author"]["A"]) == {
        "exact": 1 / 2,
        "too_early": 0.0,
        "too_late": 1 / 2,
        "no_parse": 0.0,
        "within_one": 1.0,
    }
    assert rates(summary["by_author"]["B"]) == {
        "exact": 1 / 2,
        "too_early": 0.0,
        "too_late": 0.0,
        "no_parse": 1 / 2,
        "within_one": 1 / 2,
    }


def test_summarise_whole_span():
    rows = [
        {"author": "A", "annotated_step": 2, "end_step": 3, "predicted": p} for p in (1, 3, 4, 5)
    ]
    strict = rates(summarise(rows, n_boot=50)["overall"])
    assert strict == {
        "exact": 0.0,
        "too_early": 1 / 4,
        "too_late": 3 / 4,
        "no_parse": 0.0,
        "within_one": 2 / 4,  # 1 and 3 are next to step 2
    }
    spanned = rates(summarise(rows, whole_span=True, n_boot=50)["overall"])
    assert spanned == {
        "exact": 1 / 4,
        "too_early": 1 / 4,
        "too_late": 2 / 4,
        "no_parse": 0.0,
        "within_one": 3 / 4,  # 1, 3 and 4 are within one of 2..3
    }


def test_summarise_reads_the_prediction_key_and_checks_the_range():
    rows = [{**r, "guess": r.pop("predicted")} for r in constructed()]
    assert rates(summarise(rows, key="guess", n_boot=10)["overall"])["exact"] == 0.5
    with pytest.raises(ValueError, match="n_steps"):
        summarise([{"author": "A", "annotated_step": 1, "n_steps": 3, "predicted": 4}])
    with pytest.raises(ValueError, match="no rows"):
        summarise([])


def test_bootstrap_intervals_are_seeded_and_hold_the_estimate():
    rows = [
        {"author": "AB"[i % 2], "annotated_step": 2, "end_step": 2, "predicted": 1 + i % 3}
        for i in range(60)
    ]
    first = summarise(rows, seed=7, n_boot=300)
    assert first == summarise(rows, seed=7, n_boot=300)
    assert first != summarise(rows, seed=8, n_boot=300)
    for group in (first["overall"], *first["by_author"].values()):
        for name in RATES:
            low, high = group[name]["ci95"]
            assert 0 <= low <= group[name]["rate"] <= high <= 1
    # exact is 1/3 over 60 rows: the interval has width, but not much.
    low, high = first["overall"]["exact"]["ci95"]
    assert 0.15 < low < 1 / 3 < high < 0.5
    # A rate that is 0 on every row has the interval (0, 0).
    assert first["overall"]["no_parse"] == {"rate": 0.0, "ci95": (0.0, 0.0)}
    # A group's numbers do not depend on the other groups.
    only_a = [r for r in rows if r["author"] == "A"]
    assert summarise(only_a, seed=7, n_boot=300)["overall"] == first["by_author"]["A"]


# --- baselines and sampling ----------------------------------------------------------------------


def test_always_first_scores_the_share_of_step_one(raw, rows):
    # Independently of the module: the annotated step is 1 when the span's first non-blank
    # character comes before the first blank line that follows the solution's first text.
    at_step_one = 0
    for problem in raw["problems"].values():
        for note in problem["fws_annotations"].values():
            if note["start_idx"] is None:
                continue
            text, start = note["text"], note["start_idx"]
            first_char = start + len(text[start:]) - len(text[start:].lstrip())
            lead = len(text) - len(text.lstrip())
            blank = re.compile(r"\n\s*\n").search(text, lead)
            at_step_one += blank is None or first_char < blank.start()
    assert at_step_one == 59
    summary = summarise(with_predictions(rows, always_first(rows)), n_boot=100)
    assert summary["overall"]["exact"]["rate"] == at_step_one / 444
    assert summary["overall"]["too_late"]["rate"] == 0.0


def test_uniform_random_is_seeded_and_in_range(rows):
    first = uniform_random(rows, seed=3)
    assert first == uniform_random(rows, seed=3)
    assert first != uniform_random(rows, seed=4)
    assert all(1 <= p <= r["n_steps"] for p, r in zip(first, rows, strict=True))


def test_prior_by_position_leave_one_out():
    rows = [{"relative_position": x, "n_steps": 3} for x in (0.0, 0.0, 1.0)]
    # All rows: median 0, step 1 everywhere. Leaving a 0 out leaves [0, 1], median 0.5: step 2;
    # leaving the 1 out leaves [0, 0]: step 1.
    assert prior_by_position(rows, leave_one_out=False) == [1, 1, 1]
    assert prior_by_position(rows) == [2, 2, 1]
    # A tie between two steps goes to the earlier one; one step is always step 1.
    tie = [{"relative_position": 0.5, "n_steps": 2}, {"relative_position": 0.5, "n_steps": 1}]
    assert prior_by_position(tie) == [1, 1]
    with pytest.raises(ValueError, match="too few"):
        prior_by_position(tie[:1])


def test_prior_by_position_on_the_real_rows(rows):
    predictions = prior_by_position(rows)
    assert all(1 <= p <= r["n_steps"] for p, r in zip(predictions, rows, strict=True))
    # Median 0.25 leaves one row out without moving: step nearest a quarter of the way.
    assert predictions == [
        min(range(1, n + 1), key=lambda k: (abs(relative_position(k, n) - 0.25), k))
        for n in (r["n_steps"] for r in rows)
    ]


def test_sample_items(rows):
    picked = sample_items(rows, 20, seed=1)
    assert len(picked) == 20
    assert picked == sample_items(rows, 20, seed=1)
    assert {r["item_id"] for r in picked} == {r["item_id"] for r in sample_items(rows[::-1], 20, 1)}
    assert picked != sample_items(rows, 20, seed=2)
    positions = [rows.index(r) for r in picked]
    assert positions == sorted(positions)
    assert sample_items(rows, 10_000, seed=1) == rows
    with pytest.raises(ValueError):
        sample_items(rows, -1, seed=1)
