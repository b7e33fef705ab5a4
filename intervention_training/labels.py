"""Verification labels: grade every rollout against its reference answer; pass rate per problem."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .config import GradingParams
from .grading import grade_many


def grade_rollouts(
    rollouts: Sequence[Mapping[str, Any]],
    answers: Mapping[str, str],
    params: GradingParams,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Grade rollouts; return (grade rows, pass-rate rows, summary counts).

    A problem is ``selected`` for later stages when ``params.hard_only`` is off, or when none of
    its attempts is correct (the paper's selection of hard problems).
    """
    items = [(r["completion"], answers[r["problem_id"]], r["finish_reason"]) for r in rollouts]
    grades = grade_many(items, timeout_s=params.timeout_s, workers=params.workers)
    rows = []
    per_problem: dict[str, list[bool]] = defaultdict(list)
    for r, g in zip(rollouts, grades, strict=True):
        correct = g.status == "correct"
        per_problem[r["problem_id"]].append(correct)
        rows.append(
            {
                "rollout_id": r["rollout_id"],
                "problem_id": r["problem_id"],
                "sample_id": r["sample_id"],
                "status": g.status,
                "extracted": g.extracted,
                "detail": g.detail,
                "correct": correct,
            }
        )
    rates = []
    for pid in sorted(per_problem):
        flags = per_problem[pid]
        n_correct = sum(flags)
        rates.append(
            {
                "problem_id": pid,
                "n_samples": len(flags),
                "n_correct": n_correct,
                "pass_rate": n_correct / len(flags),
                "selected": (not params.hard_only) or n_correct == 0,
            }
        )
    summary = {
        "attempts": len(rows),
        "status": dict(sorted(Counter(r["status"] for r in rows).items())),
        "problems": len(rates),
        "problems_solved_once": sum(1 for r in rates if r["n_correct"] > 0),
        "problems_selected": sum(1 for r in rates if r["selected"]),
        "mean_pass_rate": (sum(r["pass_rate"] for r in rates) / len(rates)) if rates else 0.0,
    }
    return rows, rates, summary
