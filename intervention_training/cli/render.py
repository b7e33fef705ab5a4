"""Rendering rows for a person: one card per row; styled on a terminal, plain text elsewhere.

Cards are lists of :class:`rich.text.Text` lines. Model text goes in as plain text (never as
markup), so LaTeX brackets print as written. The markers (``>>`` for the first-error step, ``++``
for the intervention) are text, so the highlight survives in a pipe or a log file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from ..schemas import KEYS
from ..steps import split_steps
from .data import Artifacts, Row

#: Characters of a long text shown before it is cut (``--full`` shows everything).
CLIP = 500


def clip(text: str, full: bool, limit: int = CLIP) -> str:
    """``text``, or its first ``limit`` characters and a note of how much was cut."""
    if full or len(text) <= limit:
        return text
    return text[:limit].rstrip() + f" … [{len(text) - limit} more chars; --full shows all]"


def header(kind: str, key: str, tag: str = "", style: str = "") -> Text:
    """A card's title line: ``── interventions t/1/0/1 · kept ──``."""
    line = Text("── ", style="bold")
    line.append(f"{kind} ", style="bold cyan")
    line.append(key, style="bold")
    if tag:
        line.append(" · ")
        line.append(tag, style=style or "bold")
    line.append(" " + "─" * max(4, 72 - len(line.plain)), style="bold")
    return line


def field(label: str, value: Any, style: str = "") -> Text:
    """One ``label: value`` line."""
    line = Text(f"{label}: ", style="bold")
    line.append(str(value), style=style)
    return line


def block(text: str, indent: str = "    ", style: str = "") -> list[Text]:
    """A multi-line text, indented."""
    return [Text(indent + ln, style=style) for ln in (text.splitlines() or [""])]


def step_lines(
    number: int | None, text: str, marker: str = "", style: str = "", note: str = ""
) -> list[Text]:
    """One numbered step: ``>> 2 │ text   ← note``; later lines of the step are indented."""
    label = f"{marker:>2}{number if number is not None else '':>3} │ "
    lines = text.splitlines() or [""]
    out = []
    for i, ln in enumerate(lines):
        t = Text(label if i == 0 else " " * (len(label) - 2) + "│ ", style=style or "dim")
        t.append(ln, style=style)
        if note and i == len(lines) - 1:
            t.append(f"   ← {note}", style="italic " + (style or ""))
        out.append(t)
    return out


def numbered_steps(text: str, full: bool) -> list[Text]:
    """Every step of ``text``, numbered from 1 (as in prompts and intervention locations)."""
    out: list[Text] = []
    for i, step in enumerate(split_steps(text), start=1):
        out += step_lines(i, clip(step, full), style="none")
    return out or [Text("    (empty)", style="dim")]


def _value_lines(name: str, value: Any, full: bool) -> list[Text]:
    if isinstance(value, str) and ("\n" in value or len(value) > 100):
        return [field(name, "")] + block(clip(value, full))
    if isinstance(value, list):
        value = ", ".join(map(str, value)) or "[]"
    if isinstance(value, float):
        value = f"{value:.4g}"
    return [field(name, "null" if value is None else value, "dim" if value is None else "")]


def generic_card(name: str, row: Row, art: Artifacts, full: bool) -> list[Text]:
    """Any artifact's row: its key as the title, then every other column readably."""
    key = KEYS[name]
    out = [header(name, str(row[key]))]
    for col, value in row.items():
        if col == key:
            continue
        if name == "rollouts" and col == "completion":
            grade = art.by_key("grades").get(row["rollout_id"])
            if grade:
                answer = grade["extracted"] if grade["extracted"] is not None else "-"
                out.append(field("graded", f"{grade['status']} (answered {answer})"))
            out.append(field("completion, by step", ""))
            out += numbered_steps(value, full)
            continue
        out += _value_lines(col, value, full)
    return out


def print_cards(console: Any, cards: Sequence[list[Text]]) -> None:
    """Print cards separated by a blank line; long lines do not wrap when not on a terminal."""
    soft = not console.is_terminal
    for i, card in enumerate(cards):
        if i:
            console.print()
        for line in card:
            console.print(line, soft_wrap=soft, highlight=False)


def interval_text(
    value: float | None,
    low: float | None = None,
    high: float | None = None,
    *,
    scale: float = 1.0,
    digits: int = 2,
) -> str:
    """``value [low, high]`` times ``scale`` with ``digits`` decimals (``12.50 [8.00, 17.25]``);
    the value alone when either bound is missing, and ``—`` when the value is."""
    if value is None:
        return "—"
    text = f"{value * scale:.{digits}f}"
    if low is None or high is None:
        return text
    return f"{text} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
