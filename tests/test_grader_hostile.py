"""Hostile model output against the grader: never an exception, always a status, within a bound."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervention_training.grading import STATUSES, grade, grade_many

LIMIT = 2.0
# a worker is replaced after a timeout; its start-up is not part of the item's limit
SLACK = 3.0

PATHOLOGICAL = {
    "power tower": "\\boxed{9^{9^{9^{9^{9}}}}}",
    "nested fractions": "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
    "deep braces": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "megabyte in a box": "\\boxed{" + "1+" * 500_000 + "1}",
    "thousands of boxes": " ".join(f"\\boxed{{{i}}}" for i in range(5000)),
    "huge factorial": "\\boxed{(10^{10})!}",
    "unbalanced": "\\boxed{" * 10_000,
    "nul and controls": "\\boxed{\x00\x01\x1b[31m 2}",
    "python code": "\\boxed{__import__('os').system('echo pwned')}",
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_answers_come_back_with_a_status_in_time(name):
    start = time.monotonic()
    g = grade(PATHOLOGICAL[name], "2", timeout_s=LIMIT)
    assert g.status in STATUSES
    assert time.monotonic() - start < LIMIT + SLACK


def test_a_batch_of_pathological_answers_finishes_and_counts_every_row():
    items = [(text, "2") for text in PATHOLOGICAL.values()] + [("\\boxed{2}", "2")]
    start = time.monotonic()
    grades = grade_many(items, timeout_s=LIMIT)
    assert len(grades) == len(items)
    assert grades[-1].status == "correct"  # the pool survived the bad rows
    assert time.monotonic() - start < len(items) * (LIMIT + SLACK)


def test_the_code_in_a_box_is_not_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    text = f"\\boxed{{__import__('pathlib').Path('{marker}').touch()}}"
    assert grade(text, "2", timeout_s=LIMIT).status in {"incorrect", "error"}
    assert not marker.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(
        st.sampled_from([*"0123456789+-*/^_{}()[],.= xyzRr%$", "\\frac", "\\sqrt", "\\"]),
        max_size=30,
    ).map("".join),
    reference=st.sampled_from(["2", "\\frac{1}{2}", "x^2+1", "(1, 2)", "R-2r", "50\\%"]),
    finish=st.sampled_from([None, "stop", "length"]),
)
def test_arbitrary_boxed_text_always_gets_a_status(body, reference, finish):
    g = grade(f"reasoning... \\boxed{{{body}}}", reference, finish_reason=finish, timeout_s=LIMIT)
    assert g.status in STATUSES
    if finish == "length":
        assert g.status == "truncated"
