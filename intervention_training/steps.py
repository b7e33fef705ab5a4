"""Splitting a reasoning trace into numbered steps (METHOD.md, step 4).

A trace is split into steps on blank lines. Precisely:

* A **separator** is a newline followed by one or more whitespace-only lines, i.e. a match of the
  regular expression ``\\n\\s*\\n`` (``\\s`` is Unicode whitespace, the same set as
  :meth:`str.isspace`). Matches are taken greedily from left to right, so one run of blank lines is
  one separator. ``"\\n\\n"``, ``"\\n \\n\\n"`` and ``"\\r\\n\\r\\n"`` all separate steps; a single
  newline does not, and neither does a lone ``"\\r\\r"`` (old Mac line ends are not supported).
* The text between two consecutive separators (or between the start/end of the text and a
  separator) is a **region**. A step is a region with its surrounding whitespace removed; regions
  that are empty or whitespace-only are not steps (they can only occur at the very start or end).
* Steps are numbered from 1 in order of appearance. A step never contains a blank line, but it may
  contain single newlines.

:func:`step_spans` gives ``(start, end)`` offsets of each step in the original text:
``text[start:end]`` is the step without its surrounding whitespace. :func:`prefix_before_step`
gives the original text that precedes step ``k`` up to and including the separator before it
(which is how the SFT completion ``prefix + intervention`` is built).

All functions run in time linear in ``len(text)`` and never raise on any ``str`` (except
:func:`prefix_before_step` for an invalid ``location``, by contract).
"""

from __future__ import annotations

import operator
import re

__all__ = ["STEP_LABEL", "number_steps", "prefix_before_step", "split_steps", "step_spans"]

# A newline, then any whitespace, then a newline: a newline followed by >= 1 whitespace-only lines.
# Linear: a failed attempt from one "\n" scans only the whitespace run after it, and such runs are
# disjoint (a run holding two newlines matches).
_SEPARATOR = re.compile(r"\n\s*\n")


def _layout(text: str) -> list[tuple[int, int, int]]:
    """Return ``(region_start, step_start, step_end)`` for every step of ``text``.

    ``region_start`` is the offset just after the separator preceding the step (0 for the first
    region of the text); ``text[region_start:step_start]`` is whitespace without a newline, except
    possibly for the first step, where it is the leading whitespace of the text.
    """
    layout: list[tuple[int, int, int]] = []
    region_start = 0
    bounds = [(m.start(), m.end()) for m in _SEPARATOR.finditer(text)]
    bounds.append((len(text), len(text)))
    for sep_start, sep_end in bounds:
        start, end = region_start, sep_start
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            layout.append((region_start, start, end))
        region_start = sep_end
    return layout


def step_spans(text: str) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` character offsets of each step of ``text``, in order.

    Contract: ``text[start:end]`` is the step without surrounding whitespace (never empty, never
    whitespace-only, never containing a blank line); spans are strictly increasing and
    non-overlapping; the text between two consecutive spans is whitespace containing a separator
    (``\\n\\s*\\n``); text outside all spans is whitespace. ``""`` and whitespace-only text have no
    steps; text without blank lines is one step. Linear time; never raises.
    """
    return [(start, end) for _, start, end in _layout(text)]


def split_steps(text: str) -> list[str]:
    """Return the steps of ``text``: ``[text[s:e] for s, e in step_spans(text)]``.

    Step ``i`` (1-based, as used in prompts and in proposal locations) is
    ``split_steps(text)[i - 1]``.
    """
    return [text[start:end] for start, end in step_spans(text)]


def prefix_before_step(text: str, location: int) -> str:
    """Return the original text of steps ``1..location-1``, up to and including the separator after
    step ``location - 1``.

    Contract:

    * ``location == 1`` returns ``""`` (any leading whitespace of the text is dropped).
    * For ``location >= 2`` the result is ``text[:r]`` where ``r`` is the offset just past the
      separator (the ``\\n\\s*\\n`` match) that precedes step ``location``: steps and separators are
      exactly as they were (trailing spaces, ``\\r\\n`` line ends, several blank lines). Any
      indentation at the start of step ``location`` belongs to that step and is *not* included, so
      the prefix always ends with a newline and ``text[r:start]`` is whitespace without a newline.
    * ``location`` must be an ``int`` (not ``bool``) in ``1..len(split_steps(text))``, otherwise
      :class:`ValueError` is raised.

    The SFT completion is ``prefix_before_step(attempt, loc) + intervention``.
    """
    if isinstance(location, bool):
        raise ValueError(f"location must be an integer, got {location!r}")
    try:
        index = operator.index(location)
    except TypeError:
        raise ValueError(f"location must be an integer, got {location!r}") from None
    layout = _layout(text)
    if not 1 <= index <= len(layout):
        raise ValueError(f"location {index} is out of range 1..{len(layout)}")
    if index == 1:
        return ""
    return text[: layout[index - 1][0]]


#: The label of a numbered step in the verification prompt. Not "Step": models such as Qwen3 write
#: their own "### Step k" headings, and one of those headings usually spans several of our steps, so
#: a distinct word keeps the two numberings apart (the parser reads "Substep 4" as location 4).
STEP_LABEL = "Substep"


def number_steps(steps: list[str]) -> str:
    """Render steps for a prompt as ``"Substep 1: <step 1>\\n\\nSubstep 2: <step 2>..."``.

    Step ``i`` is labelled ``Substep i`` (:data:`STEP_LABEL`) with ``i`` counted from 1, matching
    :func:`split_steps` indices and proposal locations. Steps are separated by a blank line; the
    step text is inserted unchanged (steps from :func:`split_steps` have no blank lines, so labels
    are unambiguous). An empty list renders as ``""``.
    """
    return "\n\n".join(f"{STEP_LABEL} {i}: {step}" for i, step in enumerate(steps, start=1))
