"""Tests for intervention_training.steps: splitting traces into numbered steps."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervention_training.steps import (
    number_steps,
    prefix_before_step,
    split_steps,
    step_spans,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text built from characters that exercise the separator rules.
trace_text = st.text(
    alphabet=st.sampled_from(
        ["a", "b", "1", " ", "\t", "\n", "\r", "\x0b", "\u2028", "\u00a0", "é"]
    ),
    max_size=80,
)
any_text = st.one_of(trace_text, st.text(max_size=80))


# --- examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("", []),
        ("   ", []),
        ("\n\n\n", []),
        (" \n \t\n\r\n ", []),
        ("one step only", ["one step only"]),
        ("line 1\nline 2\nline 3", ["line 1\nline 2\nline 3"]),
        ("a\n\nb", ["a", "b"]),
        ("a\n \n\nb", ["a", "b"]),
        ("a\r\n\r\nb\r\n\r\nc", ["a", "b", "c"]),
        ("a\n\n\n\n\nb", ["a", "b"]),
        ("\n\n  a  \n\n  b  \n\n", ["a", "b"]),
        ("a\nb\n\nc\nd", ["a\nb", "c\nd"]),
        ("a\r\rb", ["a\r\rb"]),  # lone CRs are not line ends here
        ("x = 1.\n\t\n$$y$$\n\nSo \\boxed{2}.", ["x = 1.", "$$y$$", "So \\boxed{2}."]),
    ],
)
def test_split_examples(text: str, steps: list[str]) -> None:
    assert split_steps(text) == steps
    assert [text[s:e] for s, e in step_spans(text)] == steps


def test_spans_are_offsets_into_original() -> None:
    text = "  Step A.\r\n\r\n  Step B  \n\n\nStep C\n"
    assert step_spans(text) == [(2, 9), (15, 21), (26, 32)]


def test_prefix_before_step_keeps_original_separators() -> None:
    text = "First.  \r\n\r\nSecond.\n \n\n  Third.\n\nFourth."
    assert prefix_before_step(text, 1) == ""
    assert prefix_before_step(text, 2) == "First.  \r\n\r\n"
    # Indentation of step 3 belongs to step 3, the prefix ends at the separator's last newline.
    assert prefix_before_step(text, 3) == "First.  \r\n\r\nSecond.\n \n\n"
    assert prefix_before_step(text, 4) == "First.  \r\n\r\nSecond.\n \n\n  Third.\n\n"


def test_prefix_before_step_location_one_drops_leading_whitespace() -> None:
    assert prefix_before_step("\n\n  a\n\nb", 1) == ""
    assert prefix_before_step("\n\n  a\n\nb", 2) == "\n\n  a\n\n"


def test_sft_completion_shape() -> None:
    attempt = "Let x = 2.\n\nThen x^2 = 5.\n\nSo the answer is 5."
    completion = prefix_before_step(attempt, 2) + "Wait, 2^2 = 4, so ..."
    assert completion == "Let x = 2.\n\nWait, 2^2 = 4, so ..."


@pytest.mark.parametrize("location", [0, -1, 4, 10**30])
def test_prefix_before_step_out_of_range(location: int) -> None:
    with pytest.raises(ValueError):
        prefix_before_step("a\n\nb\n\nc", location)


@pytest.mark.parametrize("location", [True, 1.0, "1", None])
def test_prefix_before_step_non_integer(location: object) -> None:
    with pytest.raises(ValueError):
        prefix_before_step("a\n\nb", location)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_prefix_before_step_no_steps(text: str) -> None:
    with pytest.raises(ValueError):
        prefix_before_step(text, 1)


def test_number_steps_format() -> None:
    # "Substep", not "Step": the attempts write their own "### Step k" headings.
    assert number_steps([]) == ""
    assert number_steps(["a"]) == "Substep 1: a"
    assert number_steps(["a", "b\nc"]) == "Substep 1: a\n\nSubstep 2: b\nc"
    assert number_steps(["### Step 1: set up", "x = 2"]) == (
        "Substep 1: ### Step 1: set up\n\nSubstep 2: x = 2"
    )


def test_linear_time_on_large_adversarial_inputs() -> None:
    inputs = [
        "\n" + " " * 200_000 + "x",
        ("\n" + " " * 50 + "x") * 5_000,
        "\n \n" * 60_000,
        " \n" * 100_000,
        "a\n" * 100_000,
        "x" * 300_000,
    ]
    for text in inputs:
        start = time.perf_counter()
        spans = step_spans(text)
        if spans:
            prefix_before_step(text, len(spans))
        assert time.perf_counter() - start < 1.0


# --- properties -----------------------------------------------------------------------------------


@PROPS
@given(any_text)
def test_steps_are_nonblank_and_blank_line_free(text: str) -> None:
    steps = split_steps(text)
    for step in steps:
        assert step
        assert step.strip() == step
        assert not re.search(r"\n\s*\n", step)


@PROPS
@given(any_text)
def test_reconstruction_with_original_separators(text: str) -> None:
    spans = step_spans(text)
    bounds = [0] + [x for span in spans for x in span] + [len(text)]
    gaps = [text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    steps = split_steps(text)
    rebuilt = gaps[0] + "".join(step + gap for step, gap in zip(steps, gaps[1:], strict=True))
    assert rebuilt == text
    # Everything outside the steps is whitespace; between steps there is a blank line.
    assert all(gap.strip() == "" for gap in gaps)
    for gap in gaps[1:-1]:
        assert re.search(r"\n\s*\n", gap)
    # Spans strictly increase.
    assert all(s < e for s, e in spans)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))


@PROPS
@given(any_text)
def test_prefix_before_step_property(text: str) -> None:
    spans = step_spans(text)
    for k, (start, _) in enumerate(spans, start=1):
        prefix = prefix_before_step(text, k)
        if k == 1:
            assert prefix == ""
            continue
        assert text.startswith(prefix)
        assert len(prefix) <= start
        # prefix + text[start_k:] == text, up to the indentation of step k (no newline in it).
        indent = text[len(prefix) : start]
        assert prefix + indent + text[start:] == text
        assert indent.strip() == "" and "\n" not in indent
        assert prefix.endswith("\n")
        # The prefix holds exactly steps 1..k-1.
        assert split_steps(prefix) == split_steps(text)[: k - 1]
    with pytest.raises(ValueError):
        prefix_before_step(text, len(spans) + 1)


@PROPS
@given(st.lists(st.text(min_size=1, max_size=20).filter(lambda s: s.strip()), max_size=8))
def test_number_steps_numbering_matches(steps: list[str]) -> None:
    clean = [" ".join(s.split()) for s in steps]  # one-line steps without blank lines
    rendered = number_steps(clean)
    assert split_steps(rendered) == [f"Substep {i}: {s}" for i, s in enumerate(clean, start=1)]


@PROPS
@given(any_text)
def test_number_steps_of_split_steps(text: str) -> None:
    steps = split_steps(text)
    rendered = number_steps(steps)
    assert len(split_steps(rendered)) == len(steps)
    for i, rendered_step in enumerate(split_steps(rendered), start=1):
        assert rendered_step.startswith(f"Substep {i}: ")
