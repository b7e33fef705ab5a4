"""Parsing the proposer's machine-readable intervention block (METHOD.md, step 6).

The proposer ends its answer with a block in the paper's format::

    <intervention>{"content": "...", "location": N}</intervention>

:func:`parse_proposal` takes the **last** opening ``<intervention>`` tag of the text (a model may
quote the format earlier in its reasoning) and the block up to the first closing tag after it,
repairs common faults, parses the JSON with :func:`json.loads` only (never ``eval``), and
validates it. It never raises and its work is linear in ``len(text)``; the JSON repair runs only on
blocks of at most :data:`MAX_BLOCK_CHARS` characters.

Tags
    Matched case-insensitively, with optional whitespace inside (``< Intervention >``,
    ``</intervention >``). If the last opening tag has no closing tag after it, the rest of the text
    is used if, after stripping whitespace, a truncated closing tag (``</interv``...) and code
    fences, it is a complete JSON object (``{...}``) that parses: repair ``"missing_close_tag"``.
    Otherwise the status is ``"unterminated_block"``.

Repairs (names reported in :attr:`ParsedProposal.repairs`, sorted)
    ``code_fence``
        A Markdown fence around the JSON (```` ```json ... ``` ````) is removed.
    ``surrounding_text``
        Text before the first ``{`` or after the last ``}`` in the block is ignored.
    ``latex_backslashes``
        Inside a JSON string, a backslash that does not start a JSON escape meant as such is
        doubled, so the LaTeX survives literally. The rule, applied left to right to each backslash:

        * ``\\\\`` is an escaped backslash, ``\\"`` an escaped quote, ``\\/`` a slash (all kept);
        * ``\\uXXXX`` with four hex digits is a Unicode escape (kept); any other ``\\u...``
          (``\\underline``, ``\\uparrow``) is LaTeX;
        * ``\\b \\f \\n \\r \\t`` are JSON escapes **unless** they start a LaTeX command: the
          maximal run of ASCII letters after the backslash is a known command (``\\frac``,
          ``\\times``, ``\\neq``, ``\\beta``, ``\\text``, ``\\right``, ... see
          :data:`LATEX_COMMANDS`), or it is immediately followed by ``{``, ``_`` or ``^``. So
          ``\\frac{1}{2}`` and ``\\times`` stay literal while ``a\\nb`` or ``\\nThen`` is a
          newline;
        * a backslash before any other character (``\\(``, ``\\sqrt``, ``\\cdot``, ``\\,``, ``\\{``,
          ``\\%``, a digit, end of text) is invalid JSON and therefore LaTeX.

        Known trade-off: correctly escaped JSON whose newline/tab is immediately followed by the
        letters of a listed command (``"a\\neq"`` meant as newline + ``eq``) is read as LaTeX.
    ``escaped_apostrophe``
        ``\\'`` (invalid JSON) becomes ``'``.
    ``single_quotes``
        ``'...'`` strings (keys or values) become JSON strings.
    ``unescaped_quote``
        A quote character inside a string that is not followed (after whitespace) by ``: , } ]`` or
        the end of the text does not close the string; it is kept as a literal quote. (In valid JSON
        every closing quote is followed by one of those, so valid JSON is unaffected.)
    ``unquoted_key``
        A bare identifier followed by ``:`` is quoted (``{content: "..."}``).
    ``trailing_comma``
        A comma followed (after whitespace) by ``}`` or ``]`` is dropped.
    ``step_prefix``
        A location written ``Step 5`` / ``step 5`` / ``step #5``, or with the prompt's own label
        ``Substep 5`` / ``substep #5`` / ``sub-step 5`` (any case, quoted or bare), is read as 5.
    ``location_string``
        A location written as a string of digits, ``"5"`` or ``"5."``, is read as 5.
    ``location_float``
        A location written as an integral number ``5.0`` (or ``"5.0"``) is read as 5.
    ``key_case``
        Keys are matched case-insensitively and ignoring surrounding whitespace (``"Location"``).
    ``nested_object``
        ``{"intervention": {"content": ..., "location": ...}}`` is unwrapped.

Validation
    The object must have ``content``, a string, and ``location``, an integer (``bool`` is not) in
    ``1..n_steps``; the returned content is stripped. A content that is empty after
    :meth:`str.strip` is the proposer saying it found no critical error (the prompt asks for
    ``""`` then): status ``no_error_found``, whatever the location is (or whether there is
    one). With ``n_steps < 1`` (or ``n_steps`` not an integer) every location is out of range.
    Integer literals longer than 18 digits count as out of range (no big-int conversion).
    Checks run in this order and the first failure is reported.

Statuses (:data:`STATUSES`)
    ``ok``; ``no_block`` (no opening tag); ``unterminated_block``; ``too_long`` (the block is longer
    than :data:`MAX_BLOCK_CHARS`); ``invalid_json``; ``not_an_object``; ``missing_content``;
    ``content_not_string``; ``no_error_found`` (an empty content: not a parse failure but the
    proposer's verdict, counted apart); ``missing_location``; ``location_not_integer``;
    ``location_out_of_range``.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LATEX_COMMANDS",
    "MAX_BLOCK_CHARS",
    "REPAIRS",
    "STATUSES",
    "ParsedProposal",
    "parse_proposal",
]

MAX_BLOCK_CHARS = 20_000
"""Blocks longer than this (raw text between the tags) get status ``"too_long"``."""

STATUSES: tuple[str, ...] = (
    "ok",
    "no_block",
    "unterminated_block",
    "too_long",
    "invalid_json",
    "not_an_object",
    "missing_content",
    "content_not_string",
    "no_error_found",
    "missing_location",
    "location_not_integer",
    "location_out_of_range",
)
"""Every status :func:`parse_proposal` can return."""

REPAIRS: tuple[str, ...] = (
    "code_fence",
    "escaped_apostrophe",
    "key_case",
    "latex_backslashes",
    "location_float",
    "location_string",
    "missing_close_tag",
    "nested_object",
    "single_quotes",
    "step_prefix",
    "surrounding_text",
    "trailing_comma",
    "unescaped_quote",
    "unquoted_key",
)
"""Every repair name that can appear in :attr:`ParsedProposal.repairs`."""

# LaTeX commands whose name starts with a JSON escape letter (b, f, n, r, t): a backslash followed
# by exactly one of these letter runs is LaTeX, not a JSON escape.
LATEX_COMMANDS: frozenset[str] = frozenset(
    """
    backslash bar barwedge baselineskip bbox bcancel because begin beta beth between bf bfseries
    big bigcap bigcirc bigcup bigg biggl biggm biggr bigl bigm bigodot bigoplus bigotimes bigr
    bigsqcup bigstar bigtriangledown bigtriangleup biguplus bigvee bigwedge binom blacklozenge
    blacksquare blacktriangle blacktriangledown blacktriangleleft blacktriangleright bm bmod
    bmatrix boldsymbol bot bowtie box boxdot boxed boxminus boxplus boxtimes brace brack breve
    bullet bumpeq
    fallingdotseq fbox fcolorbox flat footnote footnotesize forall frac frak frown fbox
    nabla natural ncong ne nearrow neg negthinspace neq newcommand newline nexists ngeq ngtr ni
    nleftarrow nleftrightarrow nleq nless nmid noindent nolimits nonumber normalsize not notag
    notin nparallel nprec nrightarrow nsim nsubset nsubseteq nsucc nsupset nsupseteq ntriangleleft
    ntriangleright nu nvdash nwarrow nLeftarrow nRightarrow nLeftrightarrow
    rangle rbrace rbrack rceil rfloor rgroup rho right rightarrow rightharpoonup rightleftharpoons
    rightrightarrows rightsquigarrow rightthreetimes rlap rm rmoustache root rtimes rVert rvert
    tag tan tanh tau tbinom tdots text textbf textcolor textit textnormal textrm textsc textsf
    textsl textstyle texttt textup tfrac therefore theta thetasym thickapprox thicksim thinspace
    tilde times tiny to top triangle triangledown triangleleft trianglelefteq triangleq
    triangleright trianglerighteq tt twoheadleftarrow twoheadrightarrow
    """.split()
)

_OPEN_TAG = re.compile(r"<\s*intervention\s*>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"<\s*/\s*intervention\s*>", re.IGNORECASE)
_CLOSE_TAG_TEXT = "</intervention>"
_FENCE_OPEN = re.compile(r"\A```[A-Za-z0-9_+-]*[ \t]*(?:\r?\n)?")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")
_WHITESPACE = re.compile(r"\s*")
# "Step 4", "step #4", "Substep 4", "sub-step 4", "SUBSTEP#4" (the prompt labels steps "Substep i").
_STEP_WORD = r"(?:sub[ \t_-]?)?step\s*(?:#\s*)?"
_BARE_STEP = re.compile(_STEP_WORD + r"([0-9]+)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOCATION_TEXT = re.compile(r"(" + _STEP_WORD + r")?(-?[0-9]+)(\.0*)?", re.IGNORECASE)
_MAX_INT_DIGITS = 18  # longer integer literals are kept as "huge" (always out of range)
_JSON_ESCAPE_LETTERS = "bfnrt"
_CLOSERS = ":,}]"


class _HugeInt:
    """Stand-in for an integer literal too long to convert (``int`` has a digit limit)."""

    def __init__(self, negative: bool) -> None:
        self.negative = negative


def _parse_int(literal: str) -> int | _HugeInt:
    digits = literal.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS:
        return _HugeInt(literal.startswith("-"))
    return int(literal)


@dataclass(frozen=True)
class ParsedProposal:
    """The result of parsing one proposal.

    ``status`` is ``"ok"``, ``"no_error_found"`` (empty content) or a failure reason from
    :data:`STATUSES`. On ``"ok"``, ``location`` is the 1-based step number (as
    :func:`intervention_training.steps.split_steps` numbers steps) in ``1..n_steps`` and
    ``content`` is the stripped, non-empty intervention text; otherwise both are ``None``.
    ``repairs`` lists (sorted) the repairs from :data:`REPAIRS` that were applied, also on
    failure; ``block`` is the raw text between the tags of the block used (``None`` for
    ``no_block``; for an unterminated block, the rest of the text after the opening tag).
    """

    status: str
    location: int | None
    content: str | None
    repairs: tuple[str, ...] = ()
    block: str | None = None


def _skip_ws(s: str, i: int) -> int:
    match = _WHITESPACE.match(s, i)
    return match.end() if match else i


def _is_latex(s: str, i: int) -> tuple[bool, int]:
    """Decide whether the backslash at ``s[i]`` followed by a JSON escape letter starts LaTeX.

    Returns ``(is_latex, end)`` where ``end`` is the end of the letter run after the backslash.
    """
    match = _ASCII_LETTERS.match(s, i + 1)
    end = match.end() if match else i + 1
    if end - (i + 1) < 2:
        return False, end
    if s[i + 1 : end] in LATEX_COMMANDS:
        return True, end
    return end < len(s) and s[end] in "{_^", end


def _read_string(s: str, i: int, out: list[str], repairs: set[str]) -> int:
    """Copy the string literal starting at ``s[i]`` (a quote) to ``out`` as a JSON string.

    Returns the offset just past the closing quote (or ``len(s)`` if the string never closes).
    """
    quote = s[i]
    if quote == "'":
        repairs.add("single_quotes")
    out.append('"')
    n = len(s)
    j = i + 1
    while j < n:
        c = s[j]
        if c == "\\":
            d = s[j + 1] if j + 1 < n else ""
            if d in ('"', "\\", "/"):
                out.append(s[j : j + 2])
                j += 2
            elif d == "'":
                repairs.add("escaped_apostrophe")
                out.append("'")
                j += 2
            elif d == "u" and _HEX4.match(s, j + 2):
                out.append(s[j : j + 6])
                j += 6
            elif d and d in _JSON_ESCAPE_LETTERS:
                latex, end = _is_latex(s, j)
                if latex:
                    repairs.add("latex_backslashes")
                    out.append("\\\\" + s[j + 1 : end])
                    j = end
                else:
                    out.append(s[j : j + 2])
                    j += 2
            else:
                # Invalid JSON escape (\(, \sqrt, \cdot, \,, \{, digit, end of text): LaTeX.
                repairs.add("latex_backslashes")
                out.append("\\\\")
                j += 1
        elif c == quote:
            k = _skip_ws(s, j + 1)
            if k >= n or s[k] in _CLOSERS:
                out.append('"')
                return j + 1
            repairs.add("unescaped_quote")
            out.append('\\"' if quote == '"' else "'")
            j += 1
        elif c == '"':  # a double quote inside a single-quoted string
            out.append('\\"')
            j += 1
        else:
            out.append(c)
            j += 1
    return n


def _normalize(s: str, repairs: set[str]) -> str:
    """Rewrite near-JSON ``s`` into JSON text (linear time), recording repairs applied."""
    out: list[str] = []
    n = len(s)
    i = 0
    while i < n:
        c = s[i]
        if c in "\"'":
            i = _read_string(s, i, out, repairs)
        elif c == ",":
            k = _skip_ws(s, i + 1)
            if k < n and s[k] in "}]":
                repairs.add("trailing_comma")
            else:
                out.append(c)
            i += 1
        elif c.isascii() and (c.isalpha() or c == "_"):
            step = _BARE_STEP.match(s, i)
            if step:
                repairs.add("step_prefix")
                out.append(step.group(1))
                i = step.end()
                continue
            ident = _IDENTIFIER.match(s, i)
            end = ident.end() if ident else i + 1
            word = s[i:end]
            k = _skip_ws(s, end)
            if k < n and s[k] == ":":
                repairs.add("unquoted_key")
                out.append(json.dumps(word))
            else:
                out.append(word)
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strip_fences(body: str, repairs: set[str]) -> str:
    if body.startswith("```"):
        opened = _FENCE_OPEN.match(body)
        if opened:
            body = body[opened.end() :]
            repairs.add("code_fence")
    body = body.rstrip()
    if body.endswith("```"):
        body = body[:-3]
        repairs.add("code_fence")
    return body.strip()


def _strip_partial_close_tag(rest: str) -> str:
    """Drop a possibly truncated closing tag (``</i``, ``</intervention``) ending ``rest``."""
    for length in range(len(_CLOSE_TAG_TEXT), 0, -1):
        if rest[-length:].lower() == _CLOSE_TAG_TEXT[:length]:
            return rest[:-length].rstrip()
    return rest


def _loads(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text, strict=False, parse_int=_parse_int)
    except (ValueError, RecursionError, OverflowError, MemoryError):
        return False, None


def _find_key(obj: dict[Any, Any], name: str, repairs: set[str]) -> tuple[bool, Any]:
    if name in obj:
        return True, obj[name]
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == name:
            repairs.add("key_case")
            return True, value
    return False, None


def _location(value: Any, repairs: set[str]) -> int | _HugeInt | None:
    """Interpret a location value; ``None`` when it is not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, _HugeInt)):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            repairs.add("location_float")
            return int(value)
        return None
    if isinstance(value, str):
        match = _LOCATION_TEXT.fullmatch(value.strip().rstrip("."))
        if not match:
            return None
        repairs.add("step_prefix" if match.group(1) else "location_string")
        if match.group(3) and len(match.group(3)) > 1:
            repairs.add("location_float")
        literal = match.group(2)
        if len(literal.lstrip("-")) > _MAX_INT_DIGITS:
            return _HugeInt(negative=literal.startswith("-"))
        return int(literal)
    return None


def _n_steps(n_steps: Any) -> int:
    if isinstance(n_steps, bool):
        return 0
    try:
        return operator.index(n_steps)
    except TypeError:
        return 0


def _fail(status: str, repairs: set[str], block: str | None) -> ParsedProposal:
    return ParsedProposal(status, None, None, tuple(sorted(repairs)), block)


def _validate(obj: Any, n_steps: int, repairs: set[str], block: str) -> ParsedProposal:
    if not isinstance(obj, dict):
        return _fail("not_an_object", repairs, block)
    found_content, content = _find_key(obj, "content", set())
    found_location, _ = _find_key(obj, "location", set())
    if not found_content and not found_location and len(obj) == 1:
        (inner,) = obj.values()
        if isinstance(inner, dict):
            repairs.add("nested_object")
            obj = inner
    found_content, content = _find_key(obj, "content", repairs)
    if not found_content:
        return _fail("missing_content", repairs, block)
    if not isinstance(content, str):
        return _fail("content_not_string", repairs, block)
    content = content.strip()
    if not content:
        return _fail("no_error_found", repairs, block)
    found_location, raw_location = _find_key(obj, "location", repairs)
    if not found_location:
        return _fail("missing_location", repairs, block)
    location = _location(raw_location, repairs)
    if location is None:
        return _fail("location_not_integer", repairs, block)
    if isinstance(location, _HugeInt) or not 1 <= location <= n_steps:
        return _fail("location_out_of_range", repairs, block)
    return ParsedProposal("ok", location, content, tuple(sorted(repairs)), block)


def _parse_object(body: str, repairs: set[str]) -> tuple[str, Any]:
    """Parse a terminated block body; returns ``(status, obj)`` with status ``ok`` or a failure."""
    body = _strip_fences(body.strip(), repairs)
    first, last = body.find("{"), body.rfind("}")
    if first == -1 or last < first:
        ok, obj = _loads(_normalize(body, repairs))
        if ok and not isinstance(obj, dict):
            return "not_an_object", obj
        return "invalid_json", None
    if first > 0 or last < len(body) - 1:
        repairs.add("surrounding_text")
    ok, obj = _loads(_normalize(body[first : last + 1], repairs))
    return ("ok", obj) if ok else ("invalid_json", None)


def parse_proposal(
    text: str, n_steps: int, *, max_block_chars: int = MAX_BLOCK_CHARS
) -> ParsedProposal:
    """Parse the last ``<intervention>{...}</intervention>`` block of ``text``.

    ``n_steps`` is the number of steps of the failed attempt (``len(split_steps(attempt))``); the
    location must lie in ``1..n_steps``. Never raises, whatever ``text`` and ``n_steps`` are (a
    non-``str`` text is ``"no_block"``, a non-integer ``n_steps`` counts as 0); time is linear in
    ``len(text)`` and the repair/JSON work is bounded by ``max_block_chars``. See the module
    docstring for the repair rules and :data:`STATUSES` for the possible statuses.
    """
    try:
        return _parse_proposal(text, n_steps, max_block_chars)
    except Exception:  # pragma: no cover - defensive: the contract is "never raises"
        return ParsedProposal("invalid_json", None, None)


def _parse_proposal(text: Any, n_steps: Any, max_block_chars: int) -> ParsedProposal:
    if not isinstance(text, str):
        return _fail("no_block", set(), None)
    steps = _n_steps(n_steps)
    last_open = None
    for last_open in _OPEN_TAG.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last_open is None:
        return _fail("no_block", set(), None)
    repairs: set[str] = set()
    close = _CLOSE_TAG.search(text, last_open.end())
    if close is not None:
        block = text[last_open.end() : close.start()]
        if len(block) > max_block_chars:
            return _fail("too_long", repairs, block)
        status, obj = _parse_object(block, repairs)
        if status != "ok":
            return _fail(status, repairs, block)
        return _validate(obj, steps, repairs, block)

    block = text[last_open.end() :]
    if len(block) > max_block_chars:
        return _fail("too_long", repairs, block)
    body = _strip_fences(_strip_partial_close_tag(block.strip()), repairs)
    if not (body.startswith("{") and body.endswith("}")):
        return _fail("unterminated_block", set(), block)
    ok, obj = _loads(_normalize(body, repairs))
    if not ok:
        return _fail("unterminated_block", set(), block)
    repairs.add("missing_close_tag")
    return _validate(obj, steps, repairs, block)
