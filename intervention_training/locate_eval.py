"""Can a model find the first wrong step? An evaluation set from CHAMP's human annotations.

The ``champ-dataset`` package ships, next to its 270 problems, 540 solutions written by four
models (GPT-3.5, GPT-4, GPT-4 Turbo, PaLM 2 Medium) under two prompt settings ("No C w/o H":
the problem alone; "Direct C w/ H": the problem with concepts and hints). A person marked the
first wrong step of each (``fws_annotations``, keyed ``"<model>|<prompt setting>"``): a
character span ``text[start_idx:end_idx]`` of the solution ``text``, or no span when they found
no mistake. ``text`` is exactly the model's first reply in the matching ``conversations`` entry;
the offsets index that string as stored (no normalisation), so it is used as ``solution`` as is.

:func:`load_annotated` turns every annotation *with* a span into one row and places the span on
the project's own steps (:func:`~intervention_training.steps.step_spans`, blank-line steps): the
annotated step is the step that holds the span's first non-blank character. Spans do not always
stay inside one such step: CHAMP's annotators often marked a lead-in line together with the
display under it ("This can be rewritten as:" + blank line + the wrong formula), which our
splitter cuts in two. Such rows are kept and flagged (``span_in_one_step`` false, ``end_step``
the step of the span's last non-blank character); the wrong content is then often in
``end_step``, so :func:`score_prediction` can accept the whole span (``annotated_end``).

Scoring (:func:`score_prediction`, :func:`summarise`) sorts a predicted step into ``exact``,
``too_early``, ``too_late`` or ``no_parse`` (no step could be read from the model's output), and
separately checks ``within_one``. :func:`summarise` gives each rate overall and per author with
a seeded percentile bootstrap 95% interval. :func:`always_first`, :func:`uniform_random` and
:func:`prior_by_position` are the baselines a real locator must beat.
"""

from __future__ import annotations

import json
import numbers
import random
import statistics
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .artifacts import write_artifact, write_json
from .config import LocateEvalParams, ProposalsParams
from .problems import champ_path, iter_champ
from .sources import ProblemSourceError
from .stats import percentile
from .steps import step_spans

__all__ = [
    "OUTCOMES",
    "always_first",
    "load_annotated",
    "prior_by_position",
    "relative_position",
    "sample_items",
    "score_prediction",
    "summarise",
    "uniform_random",
    "with_predictions",
]

Outcome = Literal["exact", "too_early", "too_late", "no_parse"]

#: The four outcomes of :func:`score_prediction`, in the order :func:`summarise` reports them.
OUTCOMES: tuple[Outcome, ...] = ("exact", "too_early", "too_late", "no_parse")

#: Every rate :func:`summarise` reports: the four outcomes, then ``within_one``.
_RATES = (*OUTCOMES, "within_one")


# --- the evaluation set --------------------------------------------------------------------------


def relative_position(step: int, n_steps: int) -> float:
    """Where step ``step`` (1-based) sits in a solution of ``n_steps`` steps, from 0 to 1.

    ``(step - 1) / (n_steps - 1)``: the first step is 0, the last is 1; a one-step solution is 0.
    """
    return (step - 1) / (n_steps - 1) if n_steps > 1 else 0.0


def _rng(seed: int) -> random.Random:
    """A seeded generator for sampling and resampling (reproducibility, not secrecy)."""
    return random.Random(seed)  # noqa: S311 (statistics, not security)


def _step_at(starts: list[int], spans: list[tuple[int, int]], offset: int) -> int | None:
    """The 1-based step whose span holds character ``offset``, or ``None`` (between steps)."""
    index = bisect_right(starts, offset) - 1
    if index >= 0 and offset < spans[index][1]:
        return index + 1
    return None


def load_annotated(path: Path | None = None) -> list[dict[str, Any]]:
    """One row per CHAMP model solution whose first wrong step is marked by a span.

    ``path`` is CHAMP's JSON (default: the one in the installed ``champ-dataset`` package).
    Rows come in the file's order (problem, then annotation) and hold:

    * ``item_id``: ``"<problem_id>|<model>|<prompt setting>"``, unique and stable;
    * ``problem_id`` (``"champ/<CHAMP id>"``, as the ``problems`` stage names it), ``problem``,
      ``reference_solution`` (CHAMP's worked solution, one step a paragraph) and ``answer``
      (CHAMP's short answer), all exactly as :func:`~intervention_training.problems.iter_champ`
      gives them;
    * ``solution``: the model's solution, the exact string the annotation's offsets index;
      ``author``: the model's name as CHAMP writes it; ``prompt_setting``;
    * ``span_start``, ``span_end``, ``span_text``: the annotated span as CHAMP stores it
      (``span_text == solution[span_start:span_end]``, sometimes with a trailing blank);
    * ``n_steps``: ``len(step_spans(solution))``;
    * ``annotated_step``: the 1-based step holding the span's first non-blank character;
      ``end_step``: the step holding its last; ``span_in_one_step``: whether they are equal;
    * ``relative_position``: :func:`relative_position` of ``annotated_step``.

    Annotations without a span ("no mistake") are left out. Raises
    :class:`~intervention_training.sources.ProblemSourceError` when the file is missing, or an
    annotation's offsets are out of range, cover only blanks, or its text is not the model's
    first reply in the matching conversation (then the offsets would index an unknown string).
    """
    path = path or champ_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ProblemSourceError(f"{path}: cannot read CHAMP: {err}") from err
    problems = {row["problem_id"]: row for row in iter_champ(path)}

    rows: list[dict[str, Any]] = []
    for ident, record in data["problems"].items():
        problem = problems[f"champ/{ident}"]
        for key, note in (record.get("fws_annotations") or {}).items():
            if note.get("start_idx") is None:
                continue
            rows.append(_annotated_row(problem, record, key, note, where=f"{path}: {ident} {key}"))
    return rows


def _annotated_row(
    problem: Mapping[str, Any],
    record: Mapping[str, Any],
    key: str,
    note: Mapping[str, Any],
    *,
    where: str,
) -> dict[str, Any]:
    """Build one :func:`load_annotated` row; ``where`` names the annotation in errors."""
    solution: str = note["text"]
    start, end = int(note["start_idx"]), int(note["end_idx"])
    if not 0 <= start < end <= len(solution):
        raise ProblemSourceError(f"{where}: span {start}:{end} outside 0:{len(solution)}")
    # The offsets must index the solution the model wrote: its first reply in the conversation.
    replies = [
        m.get("text")
        for m in (record.get("conversations") or {}).get(key, {}).get("messages", [])
        if str(m.get("role", "")).startswith("Model.")
    ]
    if not replies or replies[0] != solution:
        raise ProblemSourceError(f"{where}: annotated text is not the model's first reply")

    span_text = solution[start:end]
    first = start + (len(span_text) - len(span_text.lstrip()))
    last = end - (len(span_text) - len(span_text.rstrip())) - 1
    if first > last:
        raise ProblemSourceError(f"{where}: span {start}:{end} is blank")
    spans = step_spans(solution)
    starts = [s for s, _ in spans]
    # Text outside every step is whitespace, so a non-blank character always has a step.
    step, end_step = _step_at(starts, spans, first), _step_at(starts, spans, last)
    assert step is not None and end_step is not None
    author, _, setting = key.partition("|")
    return {
        "item_id": f"{problem['problem_id']}|{key}",
        "problem_id": problem["problem_id"],
        "problem": problem["problem"],
        "reference_solution": problem["reference_solution"],
        "answer": problem["answer"],
        "solution": solution,
        "author": note.get("author") or author,
        "prompt_setting": setting,
        "span_start": start,
        "span_end": end,
        "span_text": span_text,
        "n_steps": len(spans),
        "annotated_step": step,
        "end_step": end_step,
        "span_in_one_step": step == end_step,
        "relative_position": relative_position(step, len(spans)),
    }


def sample_items(rows: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[Mapping[str, Any]]:
    """A seeded random subset of ``n`` rows, in their original order.

    Deterministic for a given ``seed`` and set of ``item_id`` values (the input order does not
    matter). ``n`` at or above ``len(rows)`` returns every row; a negative ``n`` is an error.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    ids = sorted(row["item_id"] for row in rows)
    chosen = set(_rng(seed).sample(ids, min(n, len(ids))))
    return [row for row in rows if row["item_id"] in chosen]


# --- scoring -------------------------------------------------------------------------------------


def score_prediction(
    predicted: int | None, annotated: int, annotated_end: int | None = None
) -> Outcome:
    """Compare a predicted first wrong step with the annotated one (both 1-based).

    ``None`` (no step could be read from the model's output) is ``"no_parse"``. With
    ``annotated_end`` (the last step the annotated span touches), any step from ``annotated`` to
    ``annotated_end`` is ``"exact"``; otherwise only ``annotated`` is. Before that range is
    ``"too_early"``, after it ``"too_late"``. A prediction below 1 or a non-integer (a ``bool``, a
    ``float``, a string; NumPy integers are fine) is a :class:`ValueError`: the caller that parses
    model output must turn those into ``None``.
    """
    if predicted is None:
        return "no_parse"
    if isinstance(predicted, bool) or not isinstance(predicted, numbers.Integral) or predicted < 1:
        raise ValueError(f"predicted step must be None or an integer >= 1, got {predicted!r}")
    last = annotated if annotated_end is None else annotated_end
    if last < annotated:
        raise ValueError(f"annotated_end {last} is before annotated {annotated}")
    if predicted < annotated:
        return "too_early"
    if predicted > last:
        return "too_late"
    return "exact"


def _within_one(predicted: int | None, annotated: int, annotated_end: int) -> bool:
    """Whether ``predicted`` is at most one step from the range ``annotated..annotated_end``."""
    return predicted is not None and annotated - 1 <= predicted <= annotated_end + 1


def _rates_with_intervals(
    flags: Mapping[str, Sequence[bool]], n_boot: int, seed: int
) -> dict[str, Any]:
    """Point rate and percentile bootstrap 95% interval of each 0/1 sequence in ``flags``.

    All sequences have the same length and are resampled together (the same rows in each
    replicate). A fresh ``random.Random(seed)`` per call keeps a group's interval independent
    of which groups were summarised before it.
    """
    n = len(next(iter(flags.values())))
    rng = _rng(seed)
    indices = range(n)
    boot: dict[str, list[float]] = {name: [] for name in flags}
    for _ in range(n_boot):
        resample = rng.choices(indices, k=n)
        for name, values in flags.items():
            boot[name].append(sum(values[i] for i in resample) / n)
    out: dict[str, Any] = {"n": n}
    for name, values in flags.items():
        ordered = sorted(boot[name])
        out[name] = {
            "rate": sum(values) / n,
            "ci95": (percentile(ordered, 0.025), percentile(ordered, 0.975)),
        }
    return out


def summarise(
    rows_with_predictions: Sequence[Mapping[str, Any]],
    key: str = "predicted",
    *,
    whole_span: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Rates of each outcome and of ``within_one``, overall and per author, with 95% intervals.

    Each row needs ``annotated_step``, ``author`` and the prediction under ``key`` (an ``int``
    or ``None``); with ``whole_span`` a prediction anywhere in ``annotated_step..end_step``
    counts as exact (and ``within_one`` widens to match). A prediction above the row's
    ``n_steps`` is a :class:`ValueError` (see :func:`score_prediction`).

    Returns ``{"overall": group, "by_author": {author: group}}`` (authors sorted), where a
    group is ``{"n": rows, "<rate>": {"rate": r, "ci95": (low, high)}}`` for each of
    ``exact``, ``too_early``, ``too_late``, ``no_parse`` and ``within_one``. The intervals are
    percentile bootstrap intervals over rows, ``n_boot`` resamples drawn with
    ``random.Random(seed)``: the same inputs and seed give the same numbers.
    """
    if not rows_with_predictions:
        raise ValueError("no rows to summarise")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    scored: list[tuple[str, Outcome, bool]] = []
    for row in rows_with_predictions:
        predicted, annotated = row[key], row["annotated_step"]
        last = row["end_step"] if whole_span else annotated
        if predicted is not None and "n_steps" in row and predicted > row["n_steps"]:
            raise ValueError(
                f"{row.get('item_id', '?')}: predicted step {predicted} > n_steps {row['n_steps']}"
            )
        outcome = score_prediction(predicted, annotated, last)
        scored.append((row["author"], outcome, _within_one(predicted, annotated, last)))

    def group(items: list[tuple[str, Outcome, bool]]) -> dict[str, Any]:
        flags: dict[str, list[bool]] = {name: [o == name for _, o, _ in items] for name in OUTCOMES}
        flags["within_one"] = [w for _, _, w in items]
        return _rates_with_intervals(flags, n_boot, seed)

    authors = sorted({author for author, _, _ in scored})
    return {
        "overall": group(scored),
        "by_author": {a: group([s for s in scored if s[0] == a]) for a in authors},
    }


def with_predictions(
    rows: Sequence[Mapping[str, Any]], predictions: Iterable[int | None], key: str = "predicted"
) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``predictions`` (one per row, same order) stored under ``key``."""
    return [{**row, key: p} for row, p in zip(rows, predictions, strict=True)]


# --- baselines -----------------------------------------------------------------------------------


def always_first(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Predict step 1 for every row."""
    return [1 for _ in rows]


def uniform_random(rows: Sequence[Mapping[str, Any]], seed: int = 0) -> list[int]:
    """Predict a step drawn uniformly from ``1..n_steps`` per row, with ``random.Random(seed)``."""
    rng = _rng(seed)
    return [rng.randint(1, row["n_steps"]) for row in rows]


def _closest_step(position: float, n_steps: int) -> int:
    """The step whose :func:`relative_position` is closest to ``position`` (earlier on ties)."""
    return min(
        range(1, n_steps + 1), key=lambda k: (abs(relative_position(k, n_steps) - position), k)
    )


def prior_by_position(
    rows: Sequence[Mapping[str, Any]], *, leave_one_out: bool = True
) -> list[int]:
    """Predict the step nearest the median annotated relative position.

    For each row, the median is taken over the ``relative_position`` of the *other* rows
    (``leave_one_out``, the default, so a row's own label does not inform its prediction), or of
    all rows including it (``leave_one_out=False``). The prediction is the step ``k`` of that
    row whose ``relative_position(k, n_steps)`` is closest to the median, the earlier step on a
    tie. Needs at least two rows with ``leave_one_out``.
    """
    positions = [row["relative_position"] for row in rows]
    if len(positions) < (2 if leave_one_out else 1):
        raise ValueError(f"too few rows for a median: {len(positions)}")
    ordered = sorted(positions)
    overall = statistics.median(ordered)
    predictions = []
    for row in rows:
        median = overall
        if leave_one_out:
            others = ordered.copy()
            others.remove(row["relative_position"])
            median = statistics.median(others)
        predictions.append(_closest_step(median, row["n_steps"]))
    return predictions


# --- the locator: the project's own self-verification on the annotated solutions ----------------


def locate(
    rows: Sequence[Mapping[str, Any]], backend: Any, params: ProposalsParams
) -> list[dict[str, Any]]:
    """Each row with the step the proposer names as the first critical error.

    Every annotated solution is treated as a failed attempt of its problem and goes through the
    ``proposals`` stage's own machinery (:func:`~intervention_training.proposals.run_proposals`:
    the reference turn, the verification prompt, budgets, sampling and the constrained block),
    one proposal per solution, then through the interventions stage's parser. Added columns:
    ``predicted`` (the parsed location, None when none could be read), ``parse_status`` (the
    parser's status, or ``skipped: <reason>`` when the prompt did not fit), ``proposal``
    (the model's turn-2 text), ``outcome`` and ``within_one`` (strict scoring).
    """
    from .intervention_block import parse_proposal
    from .proposals import run_proposals

    problems = {
        r["problem_id"]: {
            "problem_id": r["problem_id"],
            "problem": r["problem"],
            "reference_solution": r["reference_solution"],
            "answer": r["answer"],
        }
        for r in rows
    }
    attempts = [
        {
            "rollout_id": r["item_id"],
            "problem_id": r["problem_id"],
            "sample_id": 0,
            "completion": r["solution"],
        }
        for r in rows
    ]
    one = params.model_copy(update={"per_attempt": 1})
    by_item = {p["rollout_id"]: p for p in run_proposals(problems, attempts, backend, one)}
    out = []
    for r in rows:
        p = by_item[r["item_id"]]
        predicted: int | None = None
        if p["status"] != "generated":
            status = f"skipped: {p['skip_reason']}"
        else:
            parsed = parse_proposal(p["text"], p["n_steps"])
            status = parsed.status
            predicted = parsed.location if parsed.status == "ok" else None
        outcome = score_prediction(predicted, r["annotated_step"])
        out.append(
            {
                **r,
                "predicted": predicted,
                "parse_status": status,
                "proposal": p["text"],
                "outcome": outcome,
                "within_one": _within_one(predicted, r["annotated_step"], r["annotated_step"]),
            }
        )
    return out


def _flat(group: Mapping[str, Any]) -> dict[str, float]:
    """One metrics row: ``n``, then each rate with its interval as ``<rate>_lo`` / ``_hi``."""
    row: dict[str, float] = {"n": group["n"]}
    for name in ("exact", "within_one", *(o for o in OUTCOMES if o != "exact")):
        low, high = group[name]["ci95"]
        row[name] = round(group[name]["rate"], 4)
        row[f"{name}_lo"] = round(low, 4)
        row[f"{name}_hi"] = round(high, 4)
    return row


def locate_metrics(
    scored: Sequence[Mapping[str, Any]],
    *,
    whole_span: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """The metrics file: one row for the locator overall, one per solution author, and one per
    baseline over the same rows (``always_first``, ``uniform_random`` seeded with ``seed``,
    ``prior_by_position`` leave-one-out), each with 95% bootstrap intervals."""
    summary = summarise(scored, whole_span=whole_span, n_boot=n_boot, seed=seed)
    table = {"locator": _flat(summary["overall"])}
    for author, group in summary["by_author"].items():
        table[f"locator {author}"] = _flat(group)
    baselines = {
        "always_first": always_first(scored),
        "uniform_random": uniform_random(scored, seed=seed),
        "prior_by_position": prior_by_position(scored) if len(scored) > 1 else always_first(scored),
    }
    for name, predictions in baselines.items():
        rows = with_predictions(scored, predictions, key="baseline")
        table[name] = _flat(
            summarise(rows, "baseline", whole_span=whole_span, n_boot=n_boot, seed=seed)["overall"]
        )
    return table


def write_locate_eval(
    out: str | Path,
    metrics_path: str | Path,
    params: LocateEvalParams,
    proposals: ProposalsParams,
    backend: Any,
) -> dict[str, Any]:
    """The ``locate_eval`` stage: score the proposer on ``params.items`` annotated solutions
    (all with null), write the scored rows to ``out`` and the table of :func:`locate_metrics`
    to ``metrics_path``; return the summary."""
    rows = load_annotated()
    if params.items is not None:
        rows = sample_items(rows, params.items, params.seed)
    scored = locate(rows, backend, proposals)
    table = locate_metrics(
        scored, whole_span=params.whole_span, n_boot=params.bootstrap, seed=params.seed
    )
    provenance = {"backend": backend.describe(), "items": len(scored), "seed": params.seed}
    write_artifact(scored, out, "locate_eval", provenance=provenance)
    write_json(metrics_path, table)
    summary: dict[str, Any] = {k: table["locator"][k] for k in ("n", "exact", "within_one")}
    summary["no_parse"] = table["locator"]["no_parse"]
    summary["always_first_exact"] = table["always_first"]["exact"]
    return summary
