"""In-memory versions of the streamed stage logic, used by tests as oracles.

The library streams its artifacts batch by batch; these hold everything in memory and apply
the same per-row logic in the plainest way, so a test can compare the streamed output with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from intervention_training.config import GradingParams, InterventionsParams
from intervention_training.grades import RolloutGrader
from intervention_training.interventions import InterventionFilter
from intervention_training.sft_data import sft_row


def grade_rollouts(
    rollouts: Sequence[Mapping[str, Any]], answers: Mapping[str, str], params: GradingParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(grade rows, pass-rate rows, summary) of rollouts held in memory, in one batch."""
    grader = RolloutGrader(answers, params)
    rows = grader.grade(rollouts)
    return rows, grader.pass_rates(), grader.summary()


def build_interventions(
    proposals: Sequence[Mapping[str, Any]],
    answers: Mapping[str, str],
    params: InterventionsParams,
    *,
    leak_timeout_s: float = 5.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``interventions`` (one per proposal, in memory) and the filter chain's summary."""
    chain = InterventionFilter(answers, params, leak_timeout_s=leak_timeout_s)
    rows = chain.filter(proposals)
    for i in chain.duplicates():
        rows[i]["kept"], rows[i]["drop_reason"] = False, "duplicate"
    return rows, chain.summary()


def build_sft_rows(
    selected: Sequence[Mapping[str, Any]],
    interventions: Mapping[str, Mapping[str, Any]],
    rollouts: Mapping[str, Mapping[str, Any]],
    *,
    end_of_turn_text: str | None = None,
) -> list[dict[str, Any]]:
    """One SFT row per selected intervention, sorted by proposal id."""
    rows = [
        sft_row(
            rollouts[interventions[s["proposal_id"]]["rollout_id"]],
            interventions[s["proposal_id"]],
            end_of_turn_text,
        )
        for s in selected
        if s["selected"]
    ]
    return sorted(rows, key=lambda r: r["proposal_id"])


def unchecked_selection(interventions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The guided stage switched off: every kept intervention selected, with no continuation."""
    return [
        {
            "proposal_id": iv["proposal_id"],
            "rollout_id": iv["rollout_id"],
            "problem_id": iv["problem_id"],
            "n_continuations": 0,
            "n_correct": 0,
            "selected": True,
        }
        for iv in interventions
        if iv["kept"]
    ]
