"""Tests for intervention_training.leakage (does an intervention state the answer?)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from intervention_training.leakage import LeakVerdict, leaks_answer, statements

IMO_CSV = Path(__file__).parents[2] / "shared" / "data" / "benchmarks" / "imo_answerbench_v2.csv"


@pytest.mark.parametrize(
    ("content", "reference", "reason"),
    [
        ("So the answer is 2.", "2", "stated number"),
        ("Hence $x = 2$ is forced.", "2", "right-hand side"),
        ("Then \\boxed{42} follows.", "42", "boxed"),
        ("We get $\\frac{4}{8}$ of the area.", "0.5", "math span"),
        ("The probability equals 0.5 here.", r"$\frac{1}{2}$", "stated number"),
        ("The count is $2^{10}$.", "1024", "math span"),
        ("Note $\\sqrt{8}$ appears.", r"2\sqrt{2}", "math span"),
        ("Use the bound $R - 2r$ carefully.", "$R-2r$", "math span"),
        ("It must be 7 in the end.", "7", "stated number"),
        ("Therefore $a+b = 17$, and we are done.", "17", "right-hand side"),
        ("So the sum is $17$.", "17", "stated number"),
        ("Try all powers of 2 and note that they work.", "All powers of 2\n", "substring"),
        (r"The set is $\{3, 4\}$.", "3, 4", "math span"),
    ],
)
def test_leaks(content: str, reference: str, reason: str) -> None:
    v = leaks_answer(content, reference)
    assert v.leaked, v
    assert v.reason == reason
    assert v.evidence


@pytest.mark.parametrize(
    ("content", "reference"),
    [
        # A digit that merely appears is not a statement of the answer.
        ("There are 2 roots, so in step 2 we must consider $2$ cases.", "2"),
        ("There is 1 way to pick the first element; continue from there.", "1"),
        ("Let me reconsider step 12 and the case n = 3 first.", "12"),
        ("Consider $n = 10$ first and check the parity.", "2"),
        ("Compare with $r - 2R$ instead.", "$R-2r$"),
        ("The value of $f(2) = 7$ constrains $f$.", "2"),
        ("Compute $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$ and then proceed.", "3"),
        ("Case m, then 5 m apart.", "5"),
        ("The number 420 appears in step 3.", "42"),
        ("I should double-check the inequality before moving on.", "1024"),
        ("", "5"),
    ],
)
def test_does_not_leak(content: str, reference: str) -> None:
    v = leaks_answer(content, reference)
    assert not v.leaked, v
    assert v.evidence is None


def test_empty_reference() -> None:
    assert leaks_answer("x = 2", "  ") == LeakVerdict(False, "empty reference", None)


def test_statements_extraction() -> None:
    found = statements(r"We get $x = 3, y = 4$ and \boxed{5}; there are 2 cases, total is 9.")
    rules = {(rule, cand) for rule, cand, _ in found}
    assert ("boxed", "5") in rules
    assert ("right-hand side", "3") in rules
    assert ("right-hand side", "4") in rules
    assert ("stated number", "9") in rules
    assert not any(c == "2" for _, c, _ in found)


def test_unparseable_reference_falls_back_to_text() -> None:
    ref = "1 if triangle is isoceles, otherwise 2"
    assert leaks_answer("Show it is 1 if triangle is isoceles, otherwise 2.", ref).leaked
    assert not leaks_answer("Check whether the triangle is isoceles.", ref).leaked


def test_huge_content_is_bounded() -> None:
    content = "We note $x_{%d} = %d$. " * 1000 % tuple(i for k in range(1000) for i in (k, k))
    v = leaks_answer(content, "123456789")
    assert not v.leaked
    assert leaks_answer(content + " So the total is 123456789.", "123456789").leaked


@pytest.mark.shared_data
@pytest.mark.skipif(not IMO_CSV.exists(), reason="shared data not available")
def test_imo_answers_leak_when_stated_and_not_when_absent() -> None:
    with IMO_CSV.open(newline="", encoding="utf-8") as f:
        answers = [row["Short Answer"] for row in csv.DictReader(f)][:60]
    for ans in answers:
        core = ans.strip().strip(".").strip().strip("$")
        assert leaks_answer(f"So the final answer is \\boxed{{{core}}}.", ans).leaked, ans
        assert not leaks_answer("Re-examine the case analysis in step 3 carefully.", ans).leaked
