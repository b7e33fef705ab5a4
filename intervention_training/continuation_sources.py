"""Continuation sources on hard problems (the paper's Table 1).

Which text, put before the model's continuation, makes a problem it never solved solvable? For
every hard problem (no correct attempt in the ``pass_rates`` artifact: ``n_correct == 0``) and
every kept intervention on one of its failed attempts, the model draws ``continuations`` samples
from each source:

* ``problem_only``: a fresh attempt from the rollout prompt, nothing before it;
* ``prefix_resample``: the attempt's steps 1..location-1, as written (the model resamples the
  erroneous step);
* ``prefix_with_error``: steps 1..location, the erroneous step included, then the separator that
  followed it (``"\\n\\n"`` when it was the last step): the model goes on after the error;
* ``prefix_intervention``: steps 1..location-1 + the intervention
  (:func:`~.guided.guided_prefix`, the guided stage's text), when the policy wrote the
  interventions;
* ``stronger_proposer``: the same text when a separate proposer model wrote them
  (``proposals.model`` set). The pipeline has one interventions artifact, so its intervention
  row is labelled by who wrote it: with a separate proposer, ``prefix_intervention`` is skipped
  and ``stronger_proposer`` holds the row; with the policy, ``stronger_proposer`` is skipped.
  A skipped source appears in the metrics as ``{"skipped": reason}``.

Every source gets the same budget: ``continuations`` samples per kept intervention (so
``problem_only`` rows carry the ``proposal_id`` whose budget they were drawn under). All requests
go to the backend in one ``generate`` call; each continuation is graded on its full answer text
(prefix + continuation), as the guided stage grades.

Metrics per source (:func:`source_metrics`): ``coverage`` (problems with at least one correct
continuation; a count, with ``coverage_share`` of ``problems``), ``accuracy`` (correct
continuations / continuations), each with a seeded percentile bootstrap 95% interval over
problems (the same resampled problems for every source: a paired comparison), and the ratio of
each to ``problem_only``'s (``None`` when that is 0).

Entry point of the ``continuation_sources`` stage: :func:`write_continuation_sources`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import iter_artifact, write_artifact, write_json
from .config import ContinuationSourcesParams, GradingParams
from .generation import GenerationBackend, GenerationRequest, derive_seed, sampling_from
from .grading import grade_many
from .guided import guided_prefix, kept_interventions
from .progress import progress_bar
from .readers import read_answers, read_rollouts
from .stats import percentile
from .steps import prefix_before_step, step_spans

#: Every source, in the table's order.
SOURCES = (
    "problem_only",
    "prefix_resample",
    "prefix_with_error",
    "prefix_intervention",
    "stronger_proposer",
)

#: Sources whose prefix needs a kept intervention's text.
INTERVENTION_SOURCES = ("prefix_intervention", "stronger_proposer")


def prefix_with_error(completion: str, location: int) -> str:
    """Steps ``1..location`` of ``completion`` as written, the erroneous step included, then the
    separator after it (``"\\n\\n"`` when step ``location`` is the last step)."""
    spans = step_spans(completion)
    if not 1 <= location <= len(spans):
        raise ValueError(f"location {location} is out of range 1..{len(spans)}")
    if location < len(spans):
        return prefix_before_step(completion, location + 1)
    return completion[: spans[location - 1][1]] + "\n\n"


def source_prefix(source: str, rollout: Mapping[str, Any], intervention: Mapping[str, Any]) -> str:
    """The assistant text put before the continuation for ``source``."""
    completion, location = rollout["completion"], intervention["location"]
    if source == "problem_only":
        return ""
    if source == "prefix_resample":
        return prefix_before_step(completion, location)
    if source == "prefix_with_error":
        return prefix_with_error(completion, location)
    if source in INTERVENTION_SOURCES:
        return guided_prefix(rollout, intervention)
    raise ValueError(f"unknown continuation source {source!r}")


def active_sources(proposer: str | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """(sources sampled, ``{skipped source: reason}``) for the interventions' author:
    ``proposer`` is the separate proposer model (``proposals.model``), ``None`` the policy."""
    if proposer:
        skipped = {
            "prefix_intervention": f"the interventions were written by the proposer {proposer}, "
            "not the policy (rerun with proposals.model: null for this row)"
        }
    else:
        skipped = {
            "stronger_proposer": "no separate proposer: proposals.model is null, the policy "
            "wrote the interventions (set proposals.model for this row)"
        }
    return tuple(s for s in SOURCES if s not in skipped), skipped


def hard_problem_ids(pass_rates_path: str | Path) -> list[str]:
    """Problems with no correct attempt (``n_correct == 0``), sorted."""
    cols = ("problem_id", "n_correct")
    return sorted(
        r["problem_id"]
        for batch in iter_artifact(pass_rates_path, "pass_rates", columns=cols)
        for r in batch
        if r["n_correct"] == 0
    )


def choose_problems(problem_ids: Sequence[str], cap: int | None, seed: int) -> list[str]:
    """All of ``problem_ids`` (sorted), or a seeded subset of ``cap`` of them (sorted)."""
    ids = sorted(problem_ids)
    if cap is None or cap >= len(ids):
        return ids
    rng = random.Random(derive_seed(seed, "continuation_sources", "problems"))  # noqa: S311
    return sorted(rng.sample(ids, cap))


def run_continuation_sources(
    interventions: Sequence[Mapping[str, Any]],
    rollouts: Mapping[str, Mapping[str, Any]],
    answers: Mapping[str, str],
    backend: GenerationBackend,
    params: ContinuationSourcesParams,
    grading: GradingParams,
    *,
    sources: Sequence[str] = SOURCES[:4],
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Continuation rows (source by source, interventions in the given order) for kept
    ``interventions`` (their attempts in ``rollouts``), graded against ``answers``."""
    units: list[tuple[str, Mapping[str, Any], str]] = []  # (source, intervention, prefix)
    requests = []
    for source in sources:
        for iv in interventions:
            rollout = rollouts[iv["rollout_id"]]
            prefix = source_prefix(source, rollout, iv)
            units.append((source, iv, prefix))
            seed = derive_seed(params.seed, "continuation_sources", source, iv["proposal_id"])
            requests.append(
                GenerationRequest(
                    prompt=rollout["prompt"] + prefix, n=params.continuations, seed=seed
                )
            )
    if not requests:  # nothing to continue: a lazily loaded backend never loads its model
        return []
    outputs = backend.generate(requests, sampling_from(params.sampling), progress=progress)
    items = [
        (prefix + c.text, answers[iv["problem_id"]], c.finish_reason)
        for (_, iv, prefix), completions in zip(units, outputs, strict=True)
        for c in completions
    ]
    grades = iter(grade_many(items, timeout_s=grading.timeout_s, workers=grading.workers))
    rows = []
    for (source, iv, prefix), req, completions in zip(units, requests, outputs, strict=True):
        for j, c in enumerate(completions):
            g = next(grades)
            rows.append(
                {
                    "continuation_id": f"{source}/{iv['proposal_id']}/{j}",
                    "source": source,
                    "problem_id": iv["problem_id"],
                    "rollout_id": iv["rollout_id"],
                    "proposal_id": iv["proposal_id"],
                    "continuation_index": j,
                    "prefix": prefix,
                    "continuation": c.text,
                    "n_tokens": c.n_tokens,
                    "finish_reason": c.finish_reason,
                    "status": g.status,
                    "extracted": g.extracted,
                    "correct": g.status == "correct",
                    "seed": derive_seed(req.seed, j),
                }
            )
    return rows


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProblemCounts:
    """One problem's continuations under one source."""

    continuations: int
    correct: int


def count_by_problem(
    rows: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, ProblemCounts]]:
    """``{source: {problem_id: counts}}`` from continuation rows."""
    raw: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        c = raw.setdefault(r["source"], {}).setdefault(r["problem_id"], [0, 0])
        c[0] += 1
        c[1] += bool(r["correct"])
    return {
        s: {p: ProblemCounts(n, k) for p, (n, k) in by_problem.items()}
        for s, by_problem in raw.items()
    }


def _coverage(counts: Sequence[ProblemCounts]) -> int:
    return sum(c.correct > 0 for c in counts)


def _accuracy(counts: Sequence[ProblemCounts]) -> float | None:
    n = sum(c.continuations for c in counts)
    return sum(c.correct for c in counts) / n if n else None


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def source_metrics(
    counts: Mapping[str, Mapping[str, ProblemCounts]],
    *,
    problems: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The metrics table: ``{source: {coverage, coverage_lo, coverage_hi, coverage_share,
    problems, accuracy, accuracy_lo, accuracy_hi, continuations, correct, coverage_ratio,
    accuracy_ratio}}``, sources in :data:`SOURCES` order, then ``{source: {"skipped": reason}}``
    for each of ``skipped``.

    ``problems``: the problems every source is measured on (default: every problem any source
    has; a problem a source has no continuation of counts as not covered). ``coverage`` and
    its interval are counts of problems; ``accuracy`` is pooled over continuations. Intervals:
    percentile bootstrap over problems, ``n_boot`` resamples drawn with
    ``random.Random(seed)``, the same resamples for every source (paired; the same inputs and
    seed give the same numbers). ``None`` where undefined (no continuations).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    ids = sorted(problems if problems is not None else {p for c in counts.values() for p in c})
    empty = ProblemCounts(0, 0)
    order = [s for s in SOURCES if s in counts] + sorted(set(counts) - set(SOURCES))
    table = {s: [counts[s].get(p, empty) for p in ids] for s in order}
    rng = random.Random(seed)  # noqa: S311 (statistics, not security)
    boot_cov: dict[str, list[float]] = {s: [] for s in table}
    boot_acc: dict[str, list[float]] = {s: [] for s in table}
    if ids:
        for _ in range(n_boot):
            resample = rng.choices(range(len(ids)), k=len(ids))
            for s, per_problem in table.items():
                picked = [per_problem[i] for i in resample]
                boot_cov[s].append(_coverage(picked))
                acc = _accuracy(picked)
                if acc is not None:
                    boot_acc[s].append(acc)
    out: dict[str, dict[str, Any]] = {}
    for s, per_problem in table.items():
        cov_b, acc_b = sorted(boot_cov[s]), sorted(boot_acc[s])
        coverage = _coverage(per_problem)
        out[s] = {
            "problems": len(ids),
            "coverage": coverage,
            "coverage_lo": percentile(cov_b, 0.025) if cov_b else None,
            "coverage_hi": percentile(cov_b, 0.975) if cov_b else None,
            "coverage_share": coverage / len(ids) if ids else None,
            "continuations": sum(c.continuations for c in per_problem),
            "correct": sum(c.correct for c in per_problem),
            "accuracy": _accuracy(per_problem),
            "accuracy_lo": percentile(acc_b, 0.025) if acc_b else None,
            "accuracy_hi": percentile(acc_b, 0.975) if acc_b else None,
        }
    base = out.get("problem_only")
    for row in out.values():
        row["coverage_ratio"] = _ratio(row["coverage"], base and base["coverage"])
        row["accuracy_ratio"] = _ratio(row["accuracy"], base and base["accuracy"])
    for s, reason in (skipped or {}).items():
        out[s] = {"skipped": reason}
    return out


# --- the stage -------------------------------------------------------------------------------


def write_continuation_sources(
    problems_path: str | Path,
    rollouts_path: str | Path,
    pass_rates_path: str | Path,
    interventions_path: str | Path,
    out: str | Path,
    metrics_path: str | Path,
    params: ContinuationSourcesParams,
    grading: GradingParams,
    backend: GenerationBackend,
    *,
    proposer: str | None = None,
) -> dict[str, Any]:
    """The ``continuation_sources`` stage; returns the summary.

    ``proposer``: the model that wrote the interventions when it is not the policy
    (``proposals.model``); it decides between the ``prefix_intervention`` and
    ``stronger_proposer`` rows (:func:`active_sources`). Writes the continuation rows to
    ``out`` and the table of :func:`source_metrics` to ``metrics_path``.
    """
    sources, skipped = active_sources(proposer)
    hard = hard_problem_ids(pass_rates_path)
    hard_set = set(hard)
    ivs = [iv for iv in kept_interventions(interventions_path) if iv["problem_id"] in hard_set]
    with_iv = {iv["problem_id"] for iv in ivs}
    chosen = set(choose_problems(sorted(with_iv), params.max_problems, params.seed))
    ivs = [iv for iv in ivs if iv["problem_id"] in chosen]
    answers = read_answers(problems_path)
    wanted = {iv["rollout_id"] for iv in ivs}
    rollouts = read_rollouts(rollouts_path, wanted, columns=("prompt", "completion"))
    with progress_bar(len(ivs) * len(sources), "continuation_sources") as tick:
        rows = run_continuation_sources(
            ivs, rollouts, answers, backend, params, grading, sources=sources, progress=tick
        )
    metrics = source_metrics(
        count_by_problem(rows),
        problems=sorted(chosen),
        n_boot=params.bootstrap,
        seed=params.seed,
        skipped=skipped,
    )
    summary: dict[str, Any] = {
        "hard_problems": len(hard),
        "hard_with_intervention": len(with_iv),
        "problems": len(chosen),
        "interventions": len(ivs),
        "continuations": len(rows),
        "correct": {s: metrics[s]["correct"] for s in sources},
        "skipped": sorted(skipped),
    }
    provenance = {
        "params": params.model_dump(),
        "backend": backend.describe(),
        "proposer_model": proposer,
    }
    write_artifact(rows, out, "continuation_sources", provenance=provenance, summary=summary)
    write_json(metrics_path, metrics)
    return summary
