"""Guided continuations: does the intervention lead the model to a correct answer?

For each kept intervention, the model continues its own partial answer (no new turn): the rollout
prompt, then steps 1..location-1 of the failed attempt, then the intervention, and the model goes
on from there. Each continuation is graded on the full answer text (prefix + intervention +
continuation). An intervention is ``selected`` when at least ``min_correct`` continuations are
correct. Switched off (``enabled: false``), every kept intervention is selected unchecked and
no model is loaded.

Entry point of the ``guided`` stage: :func:`write_guided`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactWriter, iter_artifact, write_artifact
from .config import GradingParams, GuidedParams
from .generation import GenerationBackend, GenerationRequest, derive_seed, sampling_from
from .grading import grade_many
from .progress import progress_bar
from .readers import read_answers, read_rollouts
from .steps import prefix_before_step


def guided_prefix(rollout: Mapping[str, Any], intervention: Mapping[str, Any]) -> str:
    """The assistant text the model continues: its own steps before the error + the fix.

    The fix is the interventions artifact's ``content`` as is (newlines already doubled there
    when ``interventions.double_newlines`` is set), the same text the SFT completion ends with.
    """
    return (
        prefix_before_step(rollout["completion"], intervention["location"])
        + intervention["content"]
    )


def _selected_row(iv: Mapping[str, Any], n: int, n_correct: int, selected: bool) -> dict:
    return {
        "proposal_id": iv["proposal_id"],
        "rollout_id": iv["rollout_id"],
        "problem_id": iv["problem_id"],
        "n_continuations": n,
        "n_correct": n_correct,
        "selected": selected,
    }


def run_guided(
    interventions: Sequence[Mapping[str, Any]],
    rollouts: Mapping[str, Mapping[str, Any]],
    answers: Mapping[str, str],
    backend: GenerationBackend,
    params: GuidedParams,
    grading: GradingParams,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(continuation rows, selection rows) for the kept interventions (guided enabled)."""
    kept = [iv for iv in interventions if iv["kept"]]
    requests, prefixes = [], []
    for iv in kept:
        rollout = rollouts[iv["rollout_id"]]
        prefix = guided_prefix(rollout, iv)
        prefixes.append(prefix)
        requests.append(
            GenerationRequest(
                prompt=rollout["prompt"] + prefix,
                n=params.continuations,
                seed=derive_seed(params.seed, "guided", iv["proposal_id"]),
            )
        )
    outputs = backend.generate(requests, sampling_from(params.sampling), progress=progress)
    items = []
    for iv, prefix, completions in zip(kept, prefixes, outputs, strict=True):
        for c in completions:
            items.append((prefix + c.text, answers[iv["problem_id"]], c.finish_reason))
    grades = iter(grade_many(items, timeout_s=grading.timeout_s, workers=grading.workers))
    continuations, selected = [], []
    for iv, req, completions in zip(kept, requests, outputs, strict=True):
        n_correct = 0
        for j, c in enumerate(completions):
            g = next(grades)
            ok = g.status == "correct"
            n_correct += ok
            continuations.append(
                {
                    "continuation_id": f"{iv['proposal_id']}/{j}",
                    "proposal_id": iv["proposal_id"],
                    "problem_id": iv["problem_id"],
                    "continuation_index": j,
                    "completion": c.text,
                    "n_tokens": c.n_tokens,
                    "finish_reason": c.finish_reason,
                    "status": g.status,
                    "extracted": g.extracted,
                    "correct": ok,
                    "seed": derive_seed(req.seed, j),
                }
            )
        selected.append(
            _selected_row(iv, len(completions), n_correct, n_correct >= params.min_correct)
        )
    return continuations, selected


#: Columns of ``interventions`` that guided selection reads.
GUIDED_COLUMNS = ("proposal_id", "rollout_id", "problem_id", "location", "content", "kept")


def kept_interventions(path: str | Path) -> list[dict[str, Any]]:
    """The kept rows of an interventions artifact, the columns guided selection needs (streamed;
    the dropped rows are never held)."""
    return [
        iv
        for batch in iter_artifact(path, "interventions", columns=GUIDED_COLUMNS)
        for iv in batch
        if iv["kept"]
    ]


def write_unchecked_selection(
    interventions_path: str | Path,
    selected_path: str | Path,
    continuations_path: str | Path,
    params: GuidedParams,
    *,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The guided stage switched off, streamed: every kept intervention is selected, no
    continuation is generated; returns the summary (memory of one batch, whatever the size)."""
    if params.enabled:
        raise ValueError("write_unchecked_selection is for guided.enabled: false")
    columns = ("proposal_id", "rollout_id", "problem_id", "kept")
    with ArtifactWriter(selected_path, "selected", provenance=provenance) as out:
        for batch in iter_artifact(interventions_path, "interventions", columns=columns):
            out.write([_selected_row(iv, 0, 0, True) for iv in batch if iv["kept"]])
        out.summary = summary = {
            "enabled": False,
            "interventions": out.rows_written,
            "continuations": 0,
            "correct_continuations": 0,
            "selected": out.rows_written,
        }
    with ArtifactWriter(continuations_path, "continuations", provenance=provenance) as conts:
        conts.summary = summary
    return summary


def write_guided(
    problems_path: str | Path,
    rollouts_path: str | Path,
    interventions_path: str | Path,
    continuations_path: str | Path,
    selected_path: str | Path,
    params: GuidedParams,
    grading: GradingParams,
    backend: GenerationBackend | None,
) -> dict[str, Any]:
    """The ``guided`` stage; returns the summary. ``backend`` is used only when
    ``params.enabled`` (switched off, the selection is streamed and the backend is never
    touched, so a lazily loaded one never loads its model)."""
    provenance: dict[str, Any] = {"params": params.model_dump()}
    if not params.enabled:
        return write_unchecked_selection(
            interventions_path, selected_path, continuations_path, params, provenance=provenance
        )
    if backend is None:
        raise ValueError("guided continuations are enabled but no backend was given")
    answers = read_answers(problems_path)
    ivs = kept_interventions(interventions_path)
    wanted = {iv["rollout_id"] for iv in ivs}
    by_rollout = read_rollouts(rollouts_path, wanted, columns=("prompt", "completion"))
    with progress_bar(len(ivs), "guided") as tick:
        conts, selected = run_guided(
            ivs, by_rollout, answers, backend, params, grading, progress=tick
        )
    summary = {
        "enabled": params.enabled,
        "interventions": len(selected),
        "continuations": len(conts),
        "correct_continuations": sum(c["correct"] for c in conts),
        "selected": sum(s["selected"] for s in selected),
    }
    provenance["backend"] = backend.describe()
    write_artifact(
        conts, continuations_path, "continuations", provenance=provenance, summary=summary
    )
    write_artifact(selected, selected_path, "selected", provenance=provenance, summary=summary)
    return summary
