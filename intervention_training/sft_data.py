"""The SFT dataset: TRL prompt-completion rows built from selected interventions.

prompt = the rollout's own rendered chat prompt (token for token what the model saw);
completion = steps 1..location-1 of the failed attempt, exactly as written (separators included),
followed by the intervention. The rest of the attempt is discarded. No end-of-turn token follows
the intervention unless ``end_of_turn`` is set, so the model does not learn to stop after the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .steps import prefix_before_step


def build_sft_rows(
    selected: Sequence[Mapping[str, Any]],
    interventions: Mapping[str, Mapping[str, Any]],
    rollouts: Mapping[str, Mapping[str, Any]],
    *,
    end_of_turn_text: str | None = None,
) -> list[dict[str, Any]]:
    """One SFT row per selected intervention; ``end_of_turn_text`` is appended when given."""
    rows = []
    for s in selected:
        if not s["selected"]:
            continue
        iv = interventions[s["proposal_id"]]
        rollout = rollouts[iv["rollout_id"]]
        prefix = prefix_before_step(rollout["completion"], iv["location"])
        completion = prefix + iv["content"]
        if end_of_turn_text:
            completion += end_of_turn_text
        rows.append(
            {
                "prompt": rollout["prompt"],
                "completion": completion,
                "problem_id": iv["problem_id"],
                "rollout_id": iv["rollout_id"],
                "proposal_id": iv["proposal_id"],
                "location": iv["location"],
                "prefix": prefix,
                "intervention": iv["content"],
                "end_of_turn": bool(end_of_turn_text),
            }
        )
    rows.sort(key=lambda r: r["proposal_id"])
    return rows


def build_reference_rows(
    problems: Sequence[Mapping[str, Any]],
    rollouts: Sequence[Mapping[str, Any]],
    *,
    end_of_turn_text: str | None = None,
) -> list[dict[str, Any]]:
    """The "SFT on reference solutions" baseline: one row per training problem with rollouts.

    prompt = the problem's rollout prompt (the same template and text as InT rows);
    completion = the worked reference solution. ``proposal_id`` is ``reference/<problem_id>``,
    ``location`` 0 and ``prefix`` empty, so the rows share the SFT schema.
    """
    prompts: dict[str, str] = {}
    for r in rollouts:
        prompts.setdefault(r["problem_id"], r["prompt"])
    rows = []
    for p in problems:
        if p["problem_id"] not in prompts:
            continue
        completion = p["reference_solution"] + (end_of_turn_text or "")
        rows.append(
            {
                "prompt": prompts[p["problem_id"]],
                "completion": completion,
                "problem_id": p["problem_id"],
                "rollout_id": "",
                "proposal_id": f"reference/{p['problem_id']}",
                "location": 0,
                "prefix": "",
                "intervention": p["reference_solution"],
                "end_of_turn": bool(end_of_turn_text),
            }
        )
    rows.sort(key=lambda r: r["proposal_id"])
    return rows
