r"""Does an intervention give away the reference answer?

An intervention must steer the student without stating the final answer. The authors' raw
substring test drops every intervention that mentions "2" when the answer is 2 ("the 2 roots",
"step 2") and misses equivalent forms (``\frac{1}{2}`` vs ``0.5``). This module judges by
mathematical equivalence (the project's grader, :func:`~intervention_training.grading.
is_equivalent` semantics) applied to the *statements* in the text.

The rule. The content leaks when any of these statements is equivalent to the reference:

1. **Boxed**: the content of any ``\boxed{}`` / ``\fbox{}``.
2. **Right-hand sides**: inside math, each piece after an ``=`` (up to ``,``, ``;``, ``\quad``,
   ``\text`` or the end of the span); in plain text, the number after ``=``.
3. **Math spans** (``$...$``, ``$$...$$``, ``\(...\)``, ``\[...\]``) taken whole, e.g.
   ``$\frac{1}{2}$`` or ``$x = 7$`` (an equation counts through its right-hand side). A span that is
   only a number (``$2$``) counts only under rule 4, like a bare number.
4. **Numbers stated as a result**: a number (bare or as a whole math span) directly preceded by a
   result cue: ``=``, ``is`` (but not "there is"), ``equals``, ``equal to``, ``must be``,
   ``should be``, ``gives``, ``yields``, ``get``, ``obtain``, ``becomes``, ``answer:``. Elsewhere a
   number is a mention, not a result: "there are 2 roots", "in step 2", "$2$ cases", "there is 1
   way" do not leak the answer 2 (or 1).
5. **Substring, for long answers**: when the reference is not a plain number and its normalised
   form (no spaces, no ``$``, ``\left``/``\right``, ``\dfrac``->``\frac``, lowercased) has at
   least 6 characters, its occurrence in the normalised content leaks. This catches answers the
   parser cannot read (prose, ``1 if ..., otherwise 2``) and long formulas written verbatim.

At most 120 non-integer statements are checked per content (boxed first, then stated numbers,
right-hand sides, spans; later ones first); integer statements against an integer answer are
all compared, locally. Limits, by design: number words ("two") are not read; a cue-less
restatement of a small number is not a leak; a check that times out or errors counts as "no
evidence" (reported in ``reason``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .answers import extract_last_boxed
from .grading import DEFAULT_TIMEOUT_S, equivalent_many

__all__ = ["LeakVerdict", "leaks_answer", "statements"]

_SPAN = re.compile(
    r"\$\$(?P<dd>.+?)\$\$|\\\[(?P<br>.+?)\\\]|\\\((?P<pa>.+?)\\\)|(?<!\\)\$(?P<d>[^$]+?)(?<!\\)\$",
    re.DOTALL,
)
_BOX_CMD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_NUMBER = r"-?\d+(?:[.,]\d+)*(?:\s*/\s*\d+)?"
_BARE_NUMBER = re.compile(rf"^\s*{_NUMBER}\s*$")
_TEXT_NUMBER = re.compile(rf"(?<![\w.\\^_]){_NUMBER}(?![\w])")
_CUE = re.compile(
    r"(?:=|\b(?:is|equals|equal\s+to|must\s+be|should\s+be|gives|yields|get|obtain|becomes"
    r"|answer\s*:?))\s*[:\s]*$",
    re.IGNORECASE,
)
_EXISTENTIAL = re.compile(r"\bthere\s+is\s*$", re.IGNORECASE)
_RHS_STOP = re.compile(r",|;|\\quad|\\qquad|\\text|\\mbox|\\\\|\\implies|\\Rightarrow|\\iff")
_EQ_SPLIT = re.compile(r"(?<![<>!\\])=")
_MAX_CANDIDATE_CHARS = 400
_MAX_CANDIDATES = 120
_SUBSTRING_MIN = 6
_RULE_PRIORITY = {"boxed": 0, "stated number": 1, "right-hand side": 2, "math span": 3}


@dataclass(frozen=True)
class LeakVerdict:
    """Verdict of :func:`leaks_answer`.

    Attributes:
        leaked: True when the content states the reference answer (see the module rule).
        reason: which rule fired (``"boxed"``, ``"right-hand side"``, ``"math span"``,
            ``"stated number"``, ``"substring"``), or ``"no leak"`` (with the count of checks that
            timed out or errored, if any), or ``"empty reference"``.
        evidence: the statement that leaked, with a little context; ``None`` when not leaked.
    """

    leaked: bool
    reason: str
    evidence: str | None


def _boxes(text: str) -> list[str]:
    """Contents of every box in ``text`` (each via :func:`extract_last_boxed` on a prefix)."""
    out = []
    for m in _BOX_CMD.finditer(text):
        # Cut right after the next box start so that this box is the last one.
        nxt = _BOX_CMD.search(text, m.end())
        piece = text[m.start() : nxt.start() if nxt else len(text)]
        content = extract_last_boxed(piece)
        if content:
            out.append(content)
    return out


def _right_hand_sides(math: str) -> list[str]:
    parts = _EQ_SPLIT.split(math)
    out = []
    for part in parts[1:]:
        piece = _RHS_STOP.split(part, maxsplit=1)[0].strip()
        if piece:
            out.append(piece)
    return out


def _has_cue(before: str) -> bool:
    tail = before[-40:]
    return bool(_CUE.search(tail)) and not _EXISTENTIAL.search(tail)


def statements(content: str) -> list[tuple[str, str, str]]:
    """The candidate statements of ``content``: ``(rule, candidate, context)`` triples.

    Exposed for tests and diagnostics; :func:`leaks_answer` checks each candidate for
    equivalence with the reference.
    """
    found: list[tuple[str, str, str]] = []

    def ctx(start: int, end: int) -> str:
        return " ".join(content[max(0, start - 30) : end + 10].split())

    for box in _boxes(content):
        found.append(("boxed", box, box))

    plain_parts: list[str] = []
    last = 0
    for m in _SPAN.finditer(content):
        plain_parts.append(content[last : m.start()])
        last = m.end()
        math = next(g for g in m.groups() if g is not None).strip()
        if not math or _BOX_CMD.search(math):
            continue  # boxes are handled above
        before = content[: m.start()]
        for rhs in _right_hand_sides(math):
            found.append(("right-hand side", rhs, ctx(m.start(), m.end())))
        if _BARE_NUMBER.match(math):
            if _has_cue(before):
                found.append(("stated number", math, ctx(m.start(), m.end())))
        else:
            found.append(("math span", math, ctx(m.start(), m.end())))
        plain_parts.append(" \x00 ")  # keeps text on both sides of a span apart
    plain_parts.append(content[last:])
    plain = "".join(plain_parts)
    for m in _TEXT_NUMBER.finditer(plain):
        if _has_cue(plain[: m.start()]):
            c = " ".join(plain[max(0, m.start() - 30) : m.end() + 10].replace("\x00", "…").split())
            found.append(("stated number", m.group(0), c))
    return found


def _normalise_for_substring(text: str) -> str:
    s = text.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = s.replace("$", "").replace("\\,", "").replace("\\!", "").replace("\\ ", "")
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".").lower()


_INT = re.compile(r"^[+-]?\d+$")


def _as_int(text: str) -> int | None:
    s = text.strip().strip("$").strip().rstrip(".").replace(" ", "")
    return int(s) if _INT.match(s) and len(s) < 200 else None


def leaks_answer(
    content: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> LeakVerdict:
    """Whether the intervention ``content`` states the ``reference`` answer (see module rule).

    Args:
        content: intervention text (untrusted).
        reference: the problem's reference short answer.
        timeout_s: hard limit per equivalence check.

    Returns:
        A :class:`LeakVerdict`. Never raises for odd input; checks that time out or fail are not
        counted as leaks and are reported in ``reason``.
    """
    ref = (reference or "").strip()
    if not ref or not _normalise_for_substring(ref):
        return LeakVerdict(False, "empty reference", None)
    content = content or ""

    norm_ref = _normalise_for_substring(ref)
    if len(norm_ref) >= _SUBSTRING_MIN and not _BARE_NUMBER.match(norm_ref):
        norm_content = _normalise_for_substring(content)
        if norm_ref in norm_content:
            return LeakVerdict(True, "substring", ref)

    cands: dict[str, tuple[str, str]] = {}
    for rule, cand, context in statements(content):
        cand = cand.strip()
        if cand and len(cand) <= _MAX_CANDIDATE_CHARS and cand not in cands:
            cands[cand] = (rule, context)
    # Integers against an integer reference are compared here, without limit (same verdict as
    # the grader's, no worker round trip); the rest go to the grader's workers.
    ref_int = _as_int(ref)
    if ref_int is not None:
        for cand, (rule, context) in cands.items():
            if _as_int(cand) == ref_int:
                return LeakVerdict(True, rule, context)
        cands = {c: v for c, v in cands.items() if _as_int(c) is None}
    if not cands:
        return LeakVerdict(False, "no leak", None)
    if len(cands) > _MAX_CANDIDATES:
        # Keep the strongest statements, later ones first (conclusions come last).
        order = list(cands)[::-1]
        order.sort(key=lambda c: _RULE_PRIORITY.get(cands[c][0], 9))
        cands = {c: cands[c] for c in order[:_MAX_CANDIDATES]}
    keys = list(cands)
    verdicts = equivalent_many([(c, ref) for c in keys], timeout_s=timeout_s)
    unknown = 0
    for cand, verdict in zip(keys, verdicts, strict=True):
        if verdict:
            rule, context = cands[cand]
            return LeakVerdict(True, rule, context)
        if verdict is None:
            unknown += 1
    reason = "no leak" if not unknown else f"no leak ({unknown} checks timed out or failed)"
    return LeakVerdict(False, reason, None)
