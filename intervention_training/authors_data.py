r"""The authors' released InT data sets, mapped onto this project's artifacts.

The InT authors (Yang et al., code at ``intervention-training/int``) published the data of each
step of their recipe on the hub. This module reads two of them and maps their rows onto the
schemas of :mod:`.schemas`, so that their data can be inspected, compared with ours or fed to the
later stages:

* ``CMU-AIRe/InT-hard-set-with-incorrect-attempts`` (README Step 1; ``filter_rollouts.ipynb``
  cell ``ee328df2``): one row per failed attempt, columns ``problem``, ``answer``,
  ``reference_solution`` (``solution`` in the notebook), ``incorrect_attempt``.
  :func:`load_attempts` gives ``problems`` rows and ``rollouts`` rows (the failed attempts).
* ``CMU-AIRe/InT-hard-set-with-incorrect-attempts-and-interventions`` (README Step 2;
  ``parse_interventions.ipynb`` cell ``c550025e``), and ``CMU-AIRe/InT-SFT``, a row filter of it
  (Step 3): the columns above plus ``intervention`` (``{"content": str, "location": int}``),
  ``intervention_guided_attempt``, ``self_verify_prompt``, ``self_verify_output``.
  :func:`load_interventions` gives ``problems``, ``rollouts``, ``interventions`` and ``sft`` rows.

Either loader reads a hub name through ``datasets.load_dataset(name, split=...)`` or a local
``.jsonl`` / ``.csv`` / ``.parquet`` file (:mod:`.sources`).

**Unverified.** The column names, types and splits above come from the authors' scripts, README
and notebook outputs, not from the published files (no data set card was found, and this
module was written without network access). A missing column is an error that names the columns
present. Check the mapping against the real files before relying on it.

The mapping, field by field:

* ``problem_id`` = ``{problem_source}/{sha256(problem.strip())[:16]}``: the id the ``problems``
  stage gives a hub problem without an id column, so with ``problems.hub_name:
  CMU-AIRe/InT-hard-set`` (the default ``problem_source``) the ids join with our own problems
  artifact. An explicit ``problem_id`` column, when present, wins, as in the problems stage.
* ``sample_id``: the authors keep no sample index, so it is derived from the attempt's text
  (``sha256(problem_id, attempt)``, 28 bits): the same attempt gets the same ``rollout_id`` =
  ``{problem_id}/{sample_id}`` in both data sets, whatever the row order. A repeated identical
  attempt of one problem in the attempts set takes the next free number.
* rollouts: ``prompt`` is the rollout prompt rendered with ``tokenizer``'s chat template (the
  problem as the only user message, as the authors sampled: ``sample_rollouts.py``
  ``apply_template``); without a tokenizer it is the bare problem text, which the SFT stage
  cannot use as is. ``n_tokens`` counts the attempt with ``tokenizer`` (0 without one);
  ``finish_reason`` is ``length`` when that count reaches ``max_new_tokens`` (the authors
  sampled 16,384 tokens: ``sample_rollouts.sh``), else ``stop`` (always ``stop`` without a
  tokenizer: the authors never recorded it). ``seed`` is -1: the authors sampled with
  ``seed=None``.
* interventions: steps are the authors' substeps, an exact ``attempt.split("\n\n")``
  (``propose_interventions.py`` l.97-99), so ``n_steps`` counts those and ``location`` (1-based)
  indexes them. ``parse_status`` uses the project parser's names: ``ok``, ``no_block`` (no
  intervention), ``invalid_json`` (a string that is neither a Python literal nor JSON),
  ``not_an_object``, ``missing_content``, ``content_not_string``, ``no_error_found`` (an empty
  content: the authors' prompt asks for one when the attempt has no critical error, l.57; they
  kept such rows, this project drops them), ``missing_location``, ``location_not_integer``,
  ``location_out_of_range`` (the authors never range-checked; such rows are kept out here). A
  location given as text takes its first digit run, as the authors did (cell ``c550025e``
  l.33-36; repair ``location_string``). ``content`` is stored as the authors wrote it (not
  stripped), or with every newline doubled when ``double_newlines`` is set, as the
  ``interventions`` stage stores it with ``interventions.double_newlines``. ``leaked`` applies
  the authors' rule, the answer as a substring of the content (cell ``7bd7660b`` l.8), not this
  project's equivalence check. ``proposal_index`` numbers repeated rows of one attempt (0 in the
  released, deduplicated set).
* sft: ``prefix`` = substeps ``1..location-1`` rejoined with ``"\n\n"``, then ``"\n\n"`` (empty
  at location 1); ``intervention`` = the content with every newline doubled; ``completion`` =
  ``prefix + intervention``, which is the authors' ``intervention_guided_attempt`` (cell
  ``c550025e`` l.39-43); rows where the file's own ``intervention_guided_attempt`` differs are
  counted as ``guided_attempt_mismatch``. ``end_of_turn`` is false (their ``qwen3_nothink_noeos``
  template). Only kept interventions get an SFT row.

The authors' substeps agree with this project's steps (:mod:`.steps`) when every separator of the
attempt is exactly one blank line; otherwise (three newlines, whitespace-only lines, spaces around a
step) the locations or prefixes may differ, so do not feed these ``interventions`` rows to our
``sft_data`` stage without checking: use the ``sft`` rows built here. Attempts where the two
disagree are counted as ``irregular_steps``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import write_artifact
from .config import ProblemsParams
from .sources import READERS, ProblemSourceError, cell_text, iter_file, iter_hub
from .steps import split_steps

__all__ = [
    "ATTEMPTS_HUB",
    "HARD_SET_HUB",
    "INTERVENTIONS_HUB",
    "SFT_HUB",
    "AuthorsData",
    "attempts_from_records",
    "authors_prefix",
    "authors_steps",
    "guided_attempt",
    "interventions_from_records",
    "load_attempts",
    "load_interventions",
    "parse_intervention",
    "problem_id_for",
    "write_authors_data",
]

HARD_SET_HUB = "CMU-AIRe/InT-hard-set"
ATTEMPTS_HUB = "CMU-AIRe/InT-hard-set-with-incorrect-attempts"
INTERVENTIONS_HUB = "CMU-AIRe/InT-hard-set-with-incorrect-attempts-and-interventions"
SFT_HUB = "CMU-AIRe/InT-SFT"

#: The authors' sampling limit for rollouts (``sample_rollouts.sh``: ``--max_tokens 16384``).
AUTHORS_MAX_NEW_TOKENS = 16384
#: The authors' step separator (``propose_interventions.py`` l.97).
SEPARATOR = "\n\n"
#: Columns holding the worked solution, first present wins (README Step 1; notebook cell 9aa2c990).
SOLUTION_COLUMNS = ("reference_solution", "solution")
UNKNOWN_SEED = -1
_DIGITS = re.compile(r"\d+")
_SAMPLE_BITS = 28  # sample ids stay well inside int32


@dataclass
class AuthorsData:
    """Rows of our artifacts built from one of the authors' data sets, and what was dropped."""

    source: str
    problems: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    interventions: list[dict[str, Any]] = field(default_factory=list)
    sft: list[dict[str, Any]] = field(default_factory=list)
    n_read: int = 0
    dropped: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        status = Counter(r["parse_status"] for r in self.interventions)
        return {
            "source": self.source,
            "read": self.n_read,
            "problems": len(self.problems),
            "rollouts": len(self.rollouts),
            "interventions": len(self.interventions),
            "kept": sum(r["kept"] for r in self.interventions),
            "sft": len(self.sft),
            "parse_status": dict(sorted(status.items())),
            "dropped": dict(sorted(self.dropped.items())),
            **dict(sorted(self.counts.items())),
        }


# -- the authors' conventions ---------------------------------------------------------------------


def problem_id_for(problem: str, problem_source: str = HARD_SET_HUB) -> str:
    """The id the ``problems`` stage gives a problem of hub set ``problem_source`` that has no id
    column (``problems.normalise``): the source, then 16 hex digits of the stripped text's hash."""
    digest = hashlib.sha256(problem.strip().encode()).hexdigest()[:16]
    return f"{problem_source}/{digest}"


def _sample_id(problem_id: str, attempt: str) -> int:
    digest = hashlib.sha256(f"{problem_id}\x00{attempt}".encode()).hexdigest()
    return int(digest, 16) >> (256 - _SAMPLE_BITS)


def authors_steps(attempt: str) -> list[str]:
    """The authors' substeps of an attempt: an exact ``split("\\n\\n")``, nothing stripped, empty
    pieces kept (``propose_interventions.py`` l.97)."""
    return attempt.split(SEPARATOR)


def authors_prefix(attempt: str, location: int) -> str:
    """Substeps ``1..location-1`` rejoined with ``"\\n\\n"``, then ``"\\n\\n"``; ``""`` at
    location 1 (``parse_interventions.ipynb`` cell ``c550025e`` l.39-43). ``location`` must lie
    in ``1..len(authors_steps(attempt))``."""
    steps = authors_steps(attempt)
    if isinstance(location, bool) or not 1 <= location <= len(steps):
        raise ValueError(f"location {location!r} is out of range 1..{len(steps)}")
    if location == 1:
        return ""
    return SEPARATOR.join(steps[: location - 1]) + SEPARATOR


def guided_attempt(attempt: str, location: int, content: str) -> str:
    """The authors' ``intervention_guided_attempt``: the prefix, then the content with every
    newline doubled."""
    return authors_prefix(attempt, location) + content.replace("\n", "\n\n")


def _steps_agree(attempt: str) -> bool:
    """True when the authors' substeps are exactly this project's steps (:mod:`.steps`)."""
    return authors_steps(attempt) == split_steps(attempt)


def parse_intervention(value: Any, n_steps: int) -> tuple[str, int | None, str | None, list[str]]:
    """``(parse_status, location, content, repairs)`` of the authors' ``intervention`` cell.

    ``value`` is a mapping (a hub struct) or its text (a Python literal, as the authors'
    ``ast.literal_eval`` read it, or JSON). On any status but ``ok`` location and content are
    ``None``, as the project's parser returns them. The content is returned as written.
    """
    repairs: list[str] = []
    if value is None or (isinstance(value, str) and not value.strip()):
        return "no_block", None, None, repairs
    obj = value
    if isinstance(value, str):
        obj = _literal(value)
        if obj is None:
            return "invalid_json", None, None, repairs
    if not isinstance(obj, Mapping):
        return "not_an_object", None, None, repairs
    if "content" not in obj:
        return "missing_content", None, None, repairs
    content = obj["content"]
    if not isinstance(content, str):
        return "content_not_string", None, None, repairs
    if not content.strip():
        return "no_error_found", None, None, repairs
    if "location" not in obj or obj["location"] is None:
        return "missing_location", None, None, repairs
    location = _location(obj["location"], repairs)
    if location is None:
        return "location_not_integer", None, None, repairs
    if not 1 <= location <= n_steps:
        return "location_out_of_range", None, None, repairs
    return "ok", location, content, repairs


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return None


def _location(value: Any, repairs: list[str]) -> int | None:
    """An integer location; text takes its first digit run (the authors' fallback)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            repairs.append("location_float")
            return int(value)
        return None
    if isinstance(value, str):
        match = _DIGITS.search(value)
        if match is None or len(match.group()) > 18:
            return None
        repairs.append("location_string")
        return int(match.group())
    return None


# -- reading --------------------------------------------------------------------------------------


def iter_records(
    source: str | Path,
    *,
    split: str = "train",
    revision: str | None = None,
    cache_dir: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of a local ``.jsonl``/``.csv``/``.parquet`` file, or of ``datasets.load_dataset(source,
    split=split)`` (a hub name or a local data set folder)."""
    path = Path(source)
    if path.suffix.lower() in READERS:
        return iter_file(path)  # a missing file is an error naming it, not a hub lookup
    params = ProblemsParams(source="hub", hub_name=str(source), split=split, hub_revision=revision)
    return iter_hub(params, cache_dir)


def _text(rec: Mapping[str, Any], columns: tuple[str, ...], where: str) -> str:
    for column in columns:
        if column in rec:
            return cell_text(rec[column], where, column)
    raise ProblemSourceError(
        f"{where}: column {' / '.join(map(repr, columns))} is missing; columns present: "
        f"{sorted(rec)}"
    )


class _Builder:
    """Problems and rollouts rows from the authors' rows, shared by both loaders."""

    def __init__(
        self,
        data: AuthorsData,
        *,
        problem_source: str,
        tokenizer: Any | None,
        max_new_tokens: int,
        probe_duplicates: bool,
    ) -> None:
        self.data = data
        self.problem_source = problem_source
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.probe_duplicates = probe_duplicates
        self.problem_ids: set[str] = set()
        self.rollout_ids: set[str] = set()
        self.by_text: dict[tuple[str, str], dict[str, Any]] = {}

    def prompt(self, problem: str) -> str:
        if self.tokenizer is None:
            return problem
        from .prompts import rollout_prompt

        return rollout_prompt(self.tokenizer, problem)

    def add(self, rec: Mapping[str, Any], where: str) -> dict[str, Any] | None:
        """The rollout row of one authors' row (added once per attempt), or None if dropped."""
        problem = _text(rec, ("problem",), where).strip()
        answer = _text(rec, ("answer",), where).strip()
        solution = _text(rec, SOLUTION_COLUMNS, where).strip()
        attempt = _text(rec, ("incorrect_attempt",), where)
        reason = None
        if not problem:
            reason = "empty_problem"
        elif not answer:
            reason = "empty_answer"
        elif not solution:
            reason = "empty_solution"
        elif not attempt.strip():
            reason = "empty_attempt"
        if reason:
            self.data.dropped[reason] += 1
            return None
        pid = str(rec.get("problem_id") or "") or problem_id_for(problem, self.problem_source)
        if pid not in self.problem_ids:
            self.problem_ids.add(pid)
            self.data.problems.append(
                {
                    "problem_id": pid,
                    "problem": problem,
                    "answer": answer,
                    "reference_solution": solution,
                    "source": self.problem_source,
                    "split": "train",
                }
            )
        key = (pid, attempt)
        if key in self.by_text and not self.probe_duplicates:
            return self.by_text[key]  # another proposal for the same attempt
        sample_id = _sample_id(pid, attempt)
        while f"{pid}/{sample_id}" in self.rollout_ids:
            sample_id = (sample_id + 1) % (1 << _SAMPLE_BITS)
        rollout_id = f"{pid}/{sample_id}"
        self.rollout_ids.add(rollout_id)
        n_tokens = 0
        if self.tokenizer is not None:
            n_tokens = len(self.tokenizer.encode(attempt, add_special_tokens=False))
        row = {
            "rollout_id": rollout_id,
            "problem_id": pid,
            "sample_id": sample_id,
            "prompt": self.prompt(problem),
            "completion": attempt,
            "n_tokens": n_tokens,
            "finish_reason": "length" if n_tokens >= self.max_new_tokens else "stop",
            "seed": UNKNOWN_SEED,
        }
        self.data.rollouts.append(row)
        self.by_text.setdefault(key, row)
        if not _steps_agree(attempt):
            self.data.counts["irregular_steps"] += 1
        return row


def attempts_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    source: str = ATTEMPTS_HUB,
    problem_source: str = HARD_SET_HUB,
    tokenizer: Any | None = None,
    max_new_tokens: int = AUTHORS_MAX_NEW_TOKENS,
) -> AuthorsData:
    """``problems`` and ``rollouts`` rows from the rows of the authors' failed-attempts set (see
    the module docstring; the mapping is unverified against the published files)."""
    data = AuthorsData(source)
    builder = _Builder(
        data,
        problem_source=problem_source,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        probe_duplicates=True,
    )
    for i, rec in enumerate(records):
        data.n_read += 1
        builder.add(rec, f"{source}: row {i + 1}")
    if data.n_read == 0:
        raise ProblemSourceError(f"{source}: no rows (empty source)")
    return data


def interventions_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    source: str = INTERVENTIONS_HUB,
    problem_source: str = HARD_SET_HUB,
    tokenizer: Any | None = None,
    max_new_tokens: int = AUTHORS_MAX_NEW_TOKENS,
    double_newlines: bool = False,
) -> AuthorsData:
    """``problems``, ``rollouts``, ``interventions`` and ``sft`` rows from the rows of the
    authors' interventions set (or ``InT-SFT``; see the module docstring; the mapping is
    unverified against the published files)."""
    data = AuthorsData(source)
    builder = _Builder(
        data,
        problem_source=problem_source,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        probe_duplicates=False,
    )
    per_attempt: Counter = Counter()
    for i, rec in enumerate(records):
        data.n_read += 1
        where = f"{source}: row {i + 1}"
        if "intervention" not in rec:
            raise ProblemSourceError(
                f"{where}: column 'intervention' is missing; columns present: {sorted(rec)}"
            )
        rollout = builder.add(rec, where)
        if rollout is None:
            continue
        attempt = rollout["completion"]
        rollout_id = rollout["rollout_id"]
        index = per_attempt[rollout_id]
        per_attempt[rollout_id] += 1
        n_steps = len(authors_steps(attempt))
        status, location, content, repairs = parse_intervention(rec["intervention"], n_steps)
        row: dict[str, Any] = {
            "proposal_id": f"{rollout_id}/{index}",
            "rollout_id": rollout_id,
            "problem_id": rollout["problem_id"],
            "sample_id": rollout["sample_id"],
            "proposal_index": index,
            "n_steps": n_steps,
            "parse_status": status,
            "location": location,
            "content": content,
            "repairs": sorted(repairs),
            "leaked": None,
            "leak_evidence": None,
            "kept": False,
            "drop_reason": status if status != "ok" else None,
        }
        data.interventions.append(row)
        if status != "ok":
            continue
        assert location is not None and content is not None
        answer = _text(rec, ("answer",), where).strip()
        row["leaked"] = answer in content
        if row["leaked"]:
            row["leak_evidence"] = f"the answer {answer!r} appears in the content (authors' rule)"
            row["drop_reason"] = "leaked"
            continue
        row["kept"] = True
        prefix = authors_prefix(attempt, location)
        intervention = content.replace("\n", "\n\n")
        if double_newlines:
            row["content"] = intervention
        completion = prefix + intervention
        theirs = rec.get("intervention_guided_attempt")
        if isinstance(theirs, str) and theirs != completion:
            data.counts["guided_attempt_mismatch"] += 1
        data.sft.append(
            {
                "prompt": rollout["prompt"],
                "completion": completion,
                "problem_id": row["problem_id"],
                "rollout_id": rollout_id,
                "proposal_id": row["proposal_id"],
                "location": location,
                "prefix": prefix,
                "intervention": intervention,
                "end_of_turn": False,
            }
        )
    if data.n_read == 0:
        raise ProblemSourceError(f"{source}: no rows (empty source)")
    return data


def load_attempts(
    source: str | Path = ATTEMPTS_HUB,
    *,
    split: str = "train",
    revision: str | None = None,
    problem_source: str = HARD_SET_HUB,
    tokenizer: Any | None = None,
    max_new_tokens: int = AUTHORS_MAX_NEW_TOKENS,
    cache_dir: str | None = None,
) -> AuthorsData:
    """The authors' failed attempts (``InT-hard-set-with-incorrect-attempts``, split ``train``,
    16,190 rows per their notebook) as ``problems`` and ``rollouts`` rows. ``source``: a hub name,
    a local data set folder or a local file. Unverified mapping: see the module docstring."""
    records = iter_records(source, split=split, revision=revision, cache_dir=cache_dir)
    return attempts_from_records(
        records,
        source=str(source),
        problem_source=problem_source,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
    )


def load_interventions(
    source: str | Path = INTERVENTIONS_HUB,
    *,
    split: str = "train",
    revision: str | None = None,
    problem_source: str = HARD_SET_HUB,
    tokenizer: Any | None = None,
    max_new_tokens: int = AUTHORS_MAX_NEW_TOKENS,
    double_newlines: bool = False,
    cache_dir: str | None = None,
) -> AuthorsData:
    """The authors' interventions (``InT-hard-set-with-incorrect-attempts-and-interventions``,
    14,766 rows per their notebook, or ``InT-SFT``) as ``problems``, ``rollouts``,
    ``interventions`` and ``sft`` rows. Unverified mapping: see the module docstring."""
    records = iter_records(source, split=split, revision=revision, cache_dir=cache_dir)
    return interventions_from_records(
        records,
        source=str(source),
        problem_source=problem_source,
        tokenizer=tokenizer,
        max_new_tokens=max_new_tokens,
        double_newlines=double_newlines,
    )


def write_authors_data(data: AuthorsData, out_dir: str | Path) -> dict[str, Any]:
    """Write every non-empty artifact of ``data`` (``problems``, ``rollouts``, ``interventions``,
    ``sft``) as ``{out_dir}/{name}.parquet``, each validated against its schema; return the
    summary (also stored in each file's metadata)."""
    out_dir = Path(out_dir)
    summary = data.summary()
    provenance = {"authors_data": data.source, "mapping": "unverified against the published files"}
    for name in ("problems", "rollouts", "interventions", "sft"):
        rows = getattr(data, name)
        if rows:
            write_artifact(
                rows, out_dir / f"{name}.parquet", name, provenance=provenance, summary=summary
            )
    return summary
