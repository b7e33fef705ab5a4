r"""Final-answer extraction from model outputs.

The project's single rule for "the model's final answer" is: the content of the **last**
``\boxed{...}`` (or ``\fbox{...}``) in the text. Everything else (grading, leak filtering, RL
reward, evaluation) builds on :func:`extract_last_boxed`.

Contract of :func:`extract_last_boxed`:

* The last occurrence of the command ``\boxed`` or ``\fbox`` (as a whole command name: ``\boxedx``
  does not count) is located; only that one is considered. If it is malformed (unbalanced braces,
  nothing after it) the result is ``None``: an earlier box is *not* used instead, because an
  unfinished last box means the model was still writing its answer.
* ``\boxed{...}``: the content between the opening brace and its matching closing brace, with
  nested braces balanced. Escaped braces ``\{`` and ``\}`` (and any other backslash-escaped
  character) do not count towards the balance, so ``\boxed{\{1,2\}}`` gives ``\{1,2\}``.
* ``\boxed 5`` shorthand (the command, whitespace, then a token): the run of characters up to the
  next whitespace or ``$``, without trailing sentence punctuation (``.``, ``,``, ``;``, ``:``).
* The returned content is stripped of surrounding whitespace; an empty box gives ``""`` (the
  caller decides what an empty answer means; the grader treats it as "no answer").
* Runs in time linear in the length of the text (one backwards search, one forward scan), so
  megabytes of braces are harmless.
"""

from __future__ import annotations

import re

__all__ = ["extract_last_boxed"]

_COMMANDS = ("\\boxed", "\\fbox")
_SHORTHAND_END = re.compile(r"[\s$]")
_TRAILING_PUNCT = ".,;:"


def _last_command(text: str) -> tuple[int, int] | None:
    """Return ``(start, end)`` of the last ``\\boxed``/``\\fbox`` command name, or ``None``.

    A match followed by an ASCII letter (``\\boxedtext``) is a different command and is skipped.
    Each rfind continues left of the previous hit, so the total work is linear.
    """
    best: tuple[int, int] | None = None
    for cmd in _COMMANDS:
        end_limit = len(text)
        while True:
            pos = text.rfind(cmd, 0, end_limit)
            if pos < 0:
                break
            after = pos + len(cmd)
            if after < len(text) and text[after].isascii() and text[after].isalpha():
                end_limit = pos + len(cmd) - 1  # look further left
                continue
            if best is None or pos > best[0]:
                best = (pos, after)
            break
    return best


def extract_last_boxed(text: str) -> str | None:
    r"""Return the content of the last ``\boxed{...}`` / ``\fbox{...}`` in ``text``.

    Args:
        text: any model output (untrusted; may be huge).

    Returns:
        The stripped content of the last box, ``""`` for an empty box, or ``None`` when the text
        has no box or the last box is malformed (unbalanced braces, no argument).
    """
    if not text:
        return None
    found = _last_command(text)
    if found is None:
        return None
    _, i = found
    n = len(text)
    # Skip whitespace between the command and its argument.
    j = i
    while j < n and text[j] in " \t\r\n":
        j += 1
    if j >= n:
        return None
    if text[j] == "{":
        depth = 0
        k = j
        while k < n:
            ch = text[k]
            if ch == "\\":
                k += 2  # escaped character (\{, \}, \\, or a command's first letter)
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[j + 1 : k].strip()
            k += 1
        return None  # unbalanced
    if j == i:
        # "\boxed5"-style (no space) is accepted like the shorthand below; "\boxed}" is not.
        if text[j] in "}$":
            return None
    m = _SHORTHAND_END.search(text, j)
    token = text[j : m.start() if m else n].rstrip(_TRAILING_PUNCT)
    return token.strip() or None
