"""Tests for intervention_training.answers.extract_last_boxed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intervention_training.answers import extract_last_boxed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{5}.", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{2}}{\sqrt{3}}} done", r"\frac{\sqrt{2}}{\sqrt{3}}"),
        (r"first \boxed{1} then \boxed{2} finally \boxed{3}", "3"),
        (r"\fbox{7}", "7"),
        (r"\boxed{1} and later \fbox{9}", "9"),
        (r"\fbox{1} and later \boxed{8}", "8"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{\left\{ x \right\}}", r"\left\{ x \right\}"),
        (r"\boxed{ 42 }", "42"),
        (r"\boxed {3}", "3"),
        (r"The answer is \boxed 5.", "5"),
        (r"$\boxed 12$", "12"),
        (r"\boxed{}", ""),
        ("no box here", None),
        ("", None),
        (r"\boxed{unbalanced", None),
        (r"\boxed{1} then \boxed{oops", None),  # last box malformed -> None, not the earlier one
        (r"\boxed", None),
        (r"\boxedtext{3}", None),  # a different command
        (r"\boxed{a} \boxedsomething{b}", "a"),
        (r"\boxed{\}}", r"\}"),
        ("\\boxed{x}\n\\boxed{\\text{A } \\{y\\}}", r"\text{A } \{y\}"),
    ],
)
def test_extract_last_boxed(text: str, expected: str | None) -> None:
    assert extract_last_boxed(text) == expected


def test_megabytes_of_braces_is_linear() -> None:
    blob = "\\boxed{" + "{" * 3_000_000
    t0 = time.perf_counter()
    assert extract_last_boxed(blob) is None
    balanced = "\\boxed{" + "{" * 1_000_000 + "}" * 1_000_001
    assert extract_last_boxed(balanced) == "{" * 1_000_000 + "}" * 1_000_000
    many = "\\boxed{1}" * 200_000
    assert extract_last_boxed(many) == "1"
    assert time.perf_counter() - t0 < 5.0


@given(st.text(alphabet=st.sampled_from(list("ab{}\\ $5")), max_size=60))
def test_never_raises_and_content_is_balanced(s: str) -> None:
    out = extract_last_boxed("\\boxed{" + s + "}" + " tail")
    if out is not None:
        depth = 0
        i = 0
        while i < len(out):
            if out[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(out[i], 0)
            assert depth >= 0
            i += 1


@given(st.text(max_size=40).filter(lambda s: "{" not in s and "}" not in s and "\\" not in s))
def test_roundtrip_plain_content(s: str) -> None:
    assert extract_last_boxed(f"x \\boxed{{{s}}} y") == s.strip()
