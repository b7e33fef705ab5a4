"""Tests for the project's grader (intervention_training.grading)."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intervention_training import grading
from intervention_training.grading import (
    STATUSES,
    Grade,
    grade,
    grade_many,
    is_equivalent,
    reference_problem,
)
from intervention_training.grading._pool import get_pool

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"
IMO_CSV = SHARED_DATA / "benchmarks" / "imo_answerbench_v2.csv"
HANG = r"9^{9^{9}}"  # sympy evaluates this tower when comparing it with a number: never returns


def boxed(s: str) -> str:
    return f"Some reasoning.\n\nTherefore the answer is $\\boxed{{{s}}}$."


# -- equivalence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        (r"\frac12", "0.5"),
        ("1/2", "0.5"),
        (r"\dfrac{1}{2}", "0.5"),
        (r"\frac{1}{2}", r"$\frac{1}{2}$"),
        ("0.5", r"\frac{1}{2}"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        (r"\sqrt{8}", r"2\sqrt{2}"),
        (r"\{1,2\}", "1, 2"),
        ("2030, 2026", "2026, 2030"),
        (r"(-\infty, 0]", r"$(-\infty , 0]$"),
        (r"(-\infty,-4)\cup(-4,-\frac83)", r"$(-\infty,-4)\cup (-4,-\frac{8}{3})$"),
        ("[-6, 5]", "$[-6,5]$"),
        ("y+x^2", "x^2+y"),
        ("x = 5", "5"),
        ("f(x)=x+1", "f(x)=x+1"),
        (r"\frac{R^2+Rr}{\sqrt{R^2-2Rr}}", r"$\frac{R^2+Rr}{\sqrt{R^2-2Rr}}$"),
        (r"\frac{R(R+r)}{\sqrt{R^2-2Rr}}", r"$\frac{R^2+Rr}{\sqrt{R^2-2Rr}}$"),
        ("R-2r", "$R-2r$"),
        ("2-2m", "$2-2m$"),
        ("5m", "5 m"),
        ("073", "73"),
        ("3", " 3."),
        (r"50\%", "0.5"),
        ("50%", r"\frac{1}{2}"),
        (r"50\%", r"50\%"),
        (r"5\text{ cm}", "5"),
        ("5 cm", "5"),
        (r"90^\circ", "90"),
    ],
)
def test_equivalent_forms(candidate: str, reference: str) -> None:
    assert is_equivalent(candidate, reference) is True


@pytest.mark.parametrize(
    ("candidate", "reference"),
    [
        ("0.6", "0.5"),
        (r"\sqrt{2}", "2"),
        ("[1,2)", "[1,2]"),
        ("(1,2)", "[1,2]"),
        (r"\{1,2,3\}", "1, 2"),
        # Trap: case.  math-verify's default lowercases symbols, so R == r.
        ("R", "r"),
        ("r", "R"),
        ("r-2R", "$R-2r$"),
        ("X^2+y", "x^2+y"),
        # Trap: units.  The default strips a trailing "m" from "2-2m" (-> 0) and from "5 m".
        ("0", "$2-2m$"),
        ("2", "$2-2m$"),
        ("5", "5 m"),
        ("5", "5m"),
        ("5 m", "5 n"),
        # A unit letter that is a symbol of the reference is not stripped from the candidate.
        ("7 m", "7 + m"),
        # Trap: percent.  50% is 0.5, not 50.
        (r"50\%", "50"),
        ("50", r"50\%"),
        (r"50\%", "0.05"),
    ],
)
def test_not_equivalent_and_traps(candidate: str, reference: str) -> None:
    assert is_equivalent(candidate, reference) is False


def test_unparseable_candidate_is_incorrect_with_detail() -> None:
    g = grade(boxed(r"\frac{1}{"), "1/2")
    assert g.status in {"incorrect", "no_answer"}
    g = grade(boxed("f("), "1")
    assert g.status == "incorrect"
    assert g.detail and "unparseable" in g.detail


# -- statuses -------------------------------------------------------------------------------------


def test_status_correct_incorrect() -> None:
    assert grade(boxed("42"), "42") == Grade("correct", "42", None)
    g = grade(boxed("41"), "42")
    assert g.status == "incorrect" and g.extracted == "41"
    assert g.is_correct is False and grade(boxed("42"), "42").is_correct


def test_status_uses_last_box() -> None:
    text = r"First guess \boxed{41}. On reflection \boxed{42}."
    assert grade(text, "42").status == "correct"
    assert grade(text, "41").status == "incorrect"


def test_status_no_answer() -> None:
    assert grade("the answer is 42", "42") == Grade("no_answer", None, "no \\boxed{} answer")
    assert grade(r"\boxed{}", "42").status == "no_answer"
    assert grade(r"\boxed{42", "42").status == "no_answer"
    assert grade("", "42").status == "no_answer"


def test_status_truncated_keeps_extracted() -> None:
    g = grade(boxed("42"), "42", finish_reason="length")
    assert g.status == "truncated" and g.extracted == "42"
    g = grade("I was still thinking", "42", finish_reason="length")
    assert g.status == "truncated" and g.extracted is None
    assert grade(boxed("42"), "42", finish_reason="stop").status == "correct"


def test_status_timeout_within_bound_and_pool_recovers() -> None:
    pool = get_pool()
    grade(boxed("1"), "1")  # warm a worker: start-up is not part of the limit
    killed_before = pool.stats.killed_on_timeout
    t0 = time.monotonic()
    g = grade(boxed(HANG), "1", timeout_s=1.0)
    elapsed = time.monotonic() - t0
    assert g.status == "timeout", g
    assert g.extracted == HANG
    assert elapsed < 1.0 + 2.0
    assert pool.stats.killed_on_timeout == killed_before + 1
    # The pool carries on with a replacement worker.
    assert grade(boxed(r"\frac{2}{4}"), "0.5").status == "correct"
    assert is_equivalent(HANG, "1", timeout_s=0.5) is None
    assert is_equivalent("3", "3") is True


def test_status_error_when_worker_dies() -> None:
    # A worker that dies mid-request (segfault, OOM kill) yields "error", never an exception.
    grade(boxed("1"), "1")
    result: list[Grade] = []
    th = threading.Thread(target=lambda: result.append(grade(boxed(HANG), "1", timeout_s=30)))
    before = set(get_pool().worker_pids())
    th.start()
    time.sleep(1.0)
    for pid in get_pool().worker_pids():
        if pid in before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    th.join(timeout=20)
    assert result and result[0].status == "error", result
    assert result[0].detail
    assert grade(boxed("2"), "2").status == "correct"


def test_error_response_maps_to_error() -> None:
    out = grading._call({"op": "no-such-op"}, 5.0)
    assert out.kind == "error" and "unknown op" in (out.detail or "")


def test_all_statuses_are_listed() -> None:
    assert set(STATUSES) == {"correct", "incorrect", "no_answer", "truncated", "timeout", "error"}


# -- threads, batches -----------------------------------------------------------------------------


def test_grade_from_worker_threads() -> None:
    items = [(boxed(str(i)), str(i)) for i in range(12)]
    with ThreadPoolExecutor(max_workers=4) as ex:
        grades = list(ex.map(lambda it: grade(*it), items))
    assert [g.status for g in grades] == ["correct"] * 12


def test_timeout_from_a_thread() -> None:
    result: list[Grade] = []
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: result.append(grade(boxed(HANG), "1", timeout_s=1.0)))
    th.start()
    th.join(timeout=30)
    assert result[0].status == "timeout"
    assert time.monotonic() - t0 < 1.0 + 2.0 + 2.0  # + possible first start of a worker


def test_grade_many_order_statuses_and_finish_reasons() -> None:
    items = [
        (boxed("1"), "1"),
        (boxed("2"), "3"),
        ("no box", "1"),
        (boxed("4"), "4", "length"),
        (boxed(r"\frac{1}{2}"), "0.5", "stop"),
        (boxed("R"), "r", None),
    ]
    grades = grade_many(items, workers=2)
    assert [g.status for g in grades] == [
        "correct",
        "incorrect",
        "no_answer",
        "truncated",
        "correct",
        "incorrect",
    ]
    assert [g.extracted for g in grades] == ["1", "2", None, "4", r"\frac{1}{2}", "R"]
    assert grade_many([]) == []


def test_grade_many_matches_grade() -> None:
    refs = ["1", r"\frac{1}{2}", "x^2+1", r"\{1,2\}", "R-2r", "7"]
    cands = ["1", "0.5", "1+x^2", "2,1", "r-2R", "8"]
    items = [(boxed(c), r) for c in cands for r in refs]
    many = grade_many(items, workers=2)
    single = [grade(p, r) for p, r in items]
    assert many == single


def test_grade_many_deduplicates() -> None:
    # Four copies of one hanging pair (different surrounding text, same extracted answer):
    # verified once, so one worker and a 1 s limit take about 1 s, not 4 s.
    items = [(f"Attempt {i}: " + boxed(HANG), "1") for i in range(4)]
    items.append((boxed("5"), "5"))
    grade(boxed("1"), "1")
    t0 = time.monotonic()
    grades = grade_many(items, timeout_s=1.0, workers=1)
    elapsed = time.monotonic() - t0
    assert [g.status for g in grades] == ["timeout"] * 4 + ["correct"]
    assert elapsed < 3.5


def test_grade_many_parallel_timeouts_do_not_serialise() -> None:
    items = [(boxed(HANG), "1"), (boxed(HANG), "2"), (boxed("3"), "3")]
    grade_many([(boxed("1"), "1"), (boxed("2"), "2")], workers=2)  # warm two workers
    t0 = time.monotonic()
    grades = grade_many(items, timeout_s=1.0, workers=2)
    assert [g.status for g in grades] == ["timeout", "timeout", "correct"]
    assert time.monotonic() - t0 < 1.0 + 3.0


# -- references -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "reason_prefix"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("odd $n$", "prose"),
        ("All powers of 2\n", "prose"),
        (r"$1,2,\ldots, 1235$", "ellipsis"),
        (r"$a^2 - a + 1$ ( $a \ge 2$)" + "\n0 ($a=1$)", "unparseable"),
    ],
)
def test_reference_problem_reasons(reference: str, reason_prefix: str) -> None:
    reason = reference_problem(reference)
    assert reason is not None and reason.startswith(reason_prefix), reason


@pytest.mark.parametrize(
    "reference",
    ["3", r"$\frac{1}{2}$", "$2-2m$", r"$(-\infty, -3) \cup (-3, \infty)$", "2026, 2030", "0.5"],
)
def test_reference_problem_accepts(reference: str) -> None:
    assert reference_problem(reference) is None


def _imo_answers() -> list[str]:
    with IMO_CSV.open(newline="", encoding="utf-8") as f:
        return [row["Short Answer"] for row in csv.DictReader(f)]


@pytest.mark.shared_data
@pytest.mark.skipif(not IMO_CSV.exists(), reason="shared data not available")
def test_imo_references_grade_correct_against_themselves() -> None:
    answers = _imo_answers()
    assert len(answers) == 400
    checkable = [a for a in answers if reference_problem(a) is None]
    assert len(checkable) >= 300
    grades = grade_many([(boxed(a.strip().strip("$")), a) for a in checkable])
    bad = [(a, g) for a, g in zip(checkable, grades, strict=True) if g.status != "correct"]
    assert not bad, bad[:5]
