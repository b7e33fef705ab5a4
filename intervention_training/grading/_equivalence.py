r"""The project's configured use of math-verify: parsing and equivalence of bare answers.

This module does the actual mathematics. It has **no time limit of its own**: it is meant to run
inside the grader's worker processes (see ``_pool.py``), which the parent kills at the deadline.
Calling it in-process is fine for trusted, small inputs (the audit script does that), never for
model output on a hot path.

Configuration (what differs from ``math_verify.parse`` defaults, and why):

* **No unit stripping on references.** math-verify's ``units=True`` deletes a trailing word from
  a long list (``m``, ``s``, ``t``, ``h``, ``c``, ``d``, ``cm``, ``rd``, ``ab`` ...). In olympiad
  answers those letters are variables: ``2-2m`` became ``2-2`` (= 0). We normalise with
  ``units=False``. Only an explicit ``\text{...}``/``\mathrm{...}`` suffix after a plain number is
  dropped from a reference.
* **Units on candidates, carefully.** A candidate such as ``5\text{ cm}`` or ``5 cm`` is compared
  first as written and, only if that fails, with math-verify's unit stripping -- and only when what
  remains is a plain number and no stripped letter is a symbol of the reference. So ``5 m`` is
  never equal to ``5`` when the reference is ``5m``.
* **Case is kept.** latex2sympy lowercases every symbol by default (``ConversionConfig.
  lowercase_symbols=True``), so ``R - 2r`` became ``r - 2r`` and ``R`` equalled ``r``. We parse with
  ``lowercase_symbols=False``.
* **Percent is a value.** ``50\%`` (also ``50%``, ``50 percent``) means ``50 * 1/100``: it equals
  ``0.5`` and ``\frac12`` and does not equal ``50``. (math-verify's default drops the sign inside
  LaTeX, so ``50\%`` equalled ``50`` and not ``0.5``.)
* Everything else follows math-verify: basic LaTeX clean-up, malformed operators (``\frac12``),
  ``0.5 -> 1/2``, sets, intervals, tuples, relations, numeric comparison to 6 decimals, symbolic
  simplification, ``strict=True``.
* Parsing goes through ``latex2sympy`` (the LaTeX grammar). Untrusted text is never handed to
  ``eval``/``sympify``/``parse_expr``; math-verify's plain-expression fallback (which uses
  ``parse_expr``) is deliberately not used.

Public (package-internal) functions: :func:`prepare`, :func:`parse_answer`, :func:`equivalent`,
:func:`reference_issue`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from latex2sympy2_extended.latex2sympy2 import (
    ConversionConfig,
    NormalizationConfig,
    latex2sympy,
    normalize_latex,
)
from math_verify import verify
from math_verify.grader import should_treat_as_complex
from math_verify.parser import get_last_eq

for _name in ("math_verify", "latex2sympy2_extended"):
    logging.getLogger(_name).setLevel(logging.ERROR)

#: Normalisation used for both sides: math-verify's LaTeX defaults minus unit stripping.
NORMALIZATION = NormalizationConfig(
    basic_latex=True,
    units=False,
    malformed_operators=True,
    nits=True,
    boxed="none",
    equations=False,
)
#: math-verify's own default (used only to detect and strip candidate units, and by the audit).
NORMALIZATION_WITH_UNITS = NormalizationConfig(
    basic_latex=True,
    units=True,
    malformed_operators=True,
    nits=True,
    boxed="none",
    equations=False,
)
#: Symbols keep their case: ``R`` and ``r`` are different symbols.
CONVERSION = ConversionConfig(lowercase_symbols=False)

FLOAT_ROUNDING = 6
NUMERIC_PRECISION = 15

_PERCENT = re.compile(r"\\%|%")
_DELIMS = re.compile(r"^\s*(?:\$\$|\$|\\\(|\\\[)(.*?)(?:\$\$|\$|\\\)|\\\])\s*$", re.DOTALL)
_PLAIN_NUMBER = re.compile(
    r"^\s*-?\s*(?:\d+(?:\.\d+)?|\.\d+|\\frac\{\d+\}\{\d+\}|\d+\s*/\s*\d+)\s*$"
)
_TEXT_SUFFIX = re.compile(
    r"^(.*?\S)\s*(?:\\text\s*\{[^{}]*\}|\\mbox\s*\{[^{}]*\})(?:\^\{?\d\}?)?\s*$"
)
_ELLIPSIS = re.compile(r"\\[lcd]?dots|\\cdots|\.\.\.|…")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
#: Words that may appear in a checkable answer (function names written without a backslash).
_ALLOWED_WORDS = frozenset(
    "sin cos tan cot sec csc log exp max min gcd lcm mod det deg arg sup inf lim sinh cosh tanh "
    "arcsin arccos arctan sqrt frac and or".split()
)


class ParseFailure(ValueError):
    """The text could not be parsed into a sympy object."""


@dataclass(frozen=True)
class Prepared:
    """A bare answer after clean-up: ``text`` is what latex2sympy sees."""

    original: str
    text: str


def _strip_delimiters(text: str) -> str:
    """Drop surrounding whitespace, a trailing full stop and one pair of math delimiters."""
    s = text.strip()
    for _ in range(3):
        before = s
        s = s.rstrip().rstrip(".").rstrip()
        m = _DELIMS.match(s)
        if m and "$" not in m.group(1):
            s = m.group(1).strip()
        if s == before:
            break
    return s


def prepare(text: str, *, units: bool = False) -> Prepared:
    """Normalise a bare answer (reference or extracted candidate) for parsing.

    ``units=True`` applies math-verify's unit stripping as well (used for candidate retries and
    the audit). Percent signs become ``\\cdot\\frac{1}{100}`` after normalisation.
    """
    s = _strip_delimiters(text)
    s = normalize_latex(s, NORMALIZATION_WITH_UNITS if units else NORMALIZATION)
    s = _PERCENT.sub(r"\\cdot\\frac{1}{100}", s)
    return Prepared(original=text, text=s.strip())


@lru_cache(maxsize=4096)
def _parse_text(text: str):  # returns a sympy object
    if not text:
        raise ParseFailure("empty")
    try:
        return latex2sympy(
            text,
            is_real=not should_treat_as_complex(text),
            convert_degrees=False,
            normalization_config=None,
            conversion_config=CONVERSION,
        )
    except Exception as first:  # noqa: BLE001 - any grammar error means "unparseable"
        last = get_last_eq(text)
        if last != text:
            try:
                return latex2sympy(
                    last,
                    is_real=not should_treat_as_complex(last),
                    convert_degrees=False,
                    normalization_config=None,
                    conversion_config=CONVERSION,
                )
            except Exception:  # noqa: BLE001, S110
                pass
        raise ParseFailure(_short(str(first))) from None


def _short(msg: str, limit: int = 80) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def parse_answer(text: str, *, units: bool = False):  # returns a sympy object
    """Parse a bare answer with the project's configuration; raise :class:`ParseFailure`."""
    return _parse_text(prepare(text, units=units).text)


def _reference_text(reference: str) -> str:
    """Prepared reference text, with an explicit ``\\text{unit}`` after a plain number removed."""
    s = prepare(reference).text
    m = _TEXT_SUFFIX.match(s)
    if m and _PLAIN_NUMBER.match(m.group(1)):
        return m.group(1)
    return s


def _symbol_names(expr) -> set[str]:
    try:
        return {str(s) for s in expr.free_symbols}
    except Exception:  # noqa: BLE001
        return set()


def _unit_stripped_candidate(candidate: str, ref_symbols: set[str]) -> str | None:
    """The candidate without a trailing unit, or ``None`` when stripping is not allowed.

    Allowed only when the remainder is a plain number and none of the removed letters (or
    words) is a symbol of the reference.
    """
    plain = prepare(candidate).text
    stripped = prepare(candidate, units=True).text
    m = _TEXT_SUFFIX.match(plain)
    if m and _PLAIN_NUMBER.match(m.group(1)) and stripped == plain:
        stripped = m.group(1)
    if stripped == plain or not _PLAIN_NUMBER.match(stripped):
        return None
    removed = plain[len(stripped) :] if plain.startswith(stripped) else plain
    removed = removed.replace("\\text", " ").replace("\\mbox", " ")
    words = set(re.findall(r"[A-Za-z]+", removed))
    letters = {c for w in words for c in w}
    if (words | letters) & ref_symbols:
        return None
    return stripped


def _normalised_string(text: str) -> str:
    return re.sub(r"\s+", "", prepare(text).text)


def _verify(gold, pred) -> bool:
    return bool(
        verify(
            gold,
            pred,
            float_rounding=FLOAT_ROUNDING,
            numeric_precision=NUMERIC_PRECISION,
            strict=True,
            timeout_seconds=None,
            raise_on_error=True,
        )
    )


def equivalent(candidate: str, reference: str) -> tuple[bool, str | None]:
    """Decide whether the bare answer ``candidate`` equals ``reference``.

    Returns ``(verdict, detail)``; ``detail`` says which rule decided when it is not the plain
    comparison (string fallback, unit stripping, unparseable candidate). Exceptions raised by
    math-verify/sympy propagate (the worker reports them as errors). No time limit.
    """
    if not candidate.strip():
        return False, "empty candidate"
    try:
        gold = _parse_text(_reference_text(reference))
    except ParseFailure:
        # Reference not parseable: the only honest check left is textual identity.
        same = _normalised_string(candidate) == _normalised_string(reference)
        return same, "string comparison (reference unparseable)"
    try:
        pred = parse_answer(candidate)
    except ParseFailure as exc:
        pred = None
        failure = f"candidate unparseable: {exc}"
    else:
        failure = None
        if _verify(gold, pred):
            return True, None
    stripped = _unit_stripped_candidate(candidate, _symbol_names(gold))
    if stripped is not None:
        try:
            if _verify(gold, _parse_text(stripped)):
                return True, "equal after removing the candidate's unit"
        except ParseFailure:
            pass
    return False, failure


def reference_issue(reference: str) -> str | None:
    """Why ``reference`` cannot be checked automatically, or ``None`` when it can.

    Reasons: ``"empty"``; ``"unparseable: <parser message>"``; ``"prose: <words>"`` (the answer
    is a sentence or carries conditions in words, e.g. ``odd $n$``, ``... for some $a>0$``:
    the parser would turn the words into products of letters); ``"ellipsis"`` (``1,2,\\ldots,
    1235`` would be read as the set {1, 2, 1235}).
    """
    if not reference or not reference.strip():
        return "empty"
    text = _reference_text(reference)
    if not text:
        return "empty"
    if _ELLIPSIS.search(reference):
        return "ellipsis"
    words = [
        w
        for w in _WORD.findall(_LATEX_CMD.sub(" ", text.replace("\\text", " ")))
        if w.lower() not in _ALLOWED_WORDS
    ]
    if words:
        return "prose: " + " ".join(dict.fromkeys(words))[:60]
    try:
        _parse_text(text)
    except ParseFailure as exc:
        return f"unparseable: {exc}"
    return None
