"""Guided continuations: does the intervention lead the model to a correct answer?

For each kept intervention, the model continues its own partial answer (no new turn): the rollout
prompt, then steps 1..location-1 of the failed attempt, then the intervention, and the model goes
on from there. Each continuation is graded on the full answer text (prefix + intervention +
continuation). An intervention is ``selected`` when at least ``min_correct`` continuations are
correct. Switched off (``enabled: false``), every kept intervention is selected unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactWriter, iter_artifact
from .config import GradingParams, GuidedParams
from .generation import GenerationBackend, GenerationRequest, derive_seed
from .grading import grade_many
from .runtime import sampling_params
from .steps import prefix_before_step


def guided_prefix(rollout: Mapping[str, Any], intervention: Mapping[str, Any]) -> str:
    """The assistant text the model continues: its own steps before the error + the fix."""
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
    backend: GenerationBackend | None,
    params: GuidedParams,
    grading: GradingParams,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(continuation rows, selection rows) for the kept interventions."""
    kept = [iv for iv in interventions if iv["kept"]]
    if not params.enabled:
        return [], [_selected_row(iv, 0, 0, True) for iv in kept]
    if backend is None:
        raise ValueError("guided continuations are enabled but no backend was given")
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
    outputs = backend.generate(requests, sampling_params(params.sampling), progress=progress)
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
