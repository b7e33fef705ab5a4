"""The ``grades`` stage: grade every rollout against its reference answer; pass rate per problem.

Entry point: :func:`write_grades`.

:class:`RolloutGrader` grades a stream of rollout batches and keeps only small state between
them (two counters per problem and the verdicts of distinct ``(extracted, reference)`` pairs), so
the ``grades`` stage runs in memory bounded by one batch, whatever the number of rollouts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactWriter, iter_artifact
from .config import GradingParams
from .grading import Grade, grade_many
from .readers import read_answers

#: The verdict cache is cleared when it reaches this many distinct pairs (bounded memory when
#: almost every answer is distinct; repeated answers, the case it serves, stay far below it).
MAX_CACHED_VERDICTS = 200_000

ROLLOUT_COLUMNS = ("rollout_id", "problem_id", "sample_id", "completion", "finish_reason")


class RolloutGrader:
    """Grade rollouts batch by batch; then :meth:`pass_rates` and :meth:`summary` for them all.

    A problem is ``selected`` for later stages when ``params.hard_only`` is off, or when none of
    its attempts is correct (the paper's selection of hard problems).
    """

    def __init__(self, answers: Mapping[str, str], params: GradingParams) -> None:
        self.answers, self.params = answers, params
        self._counts: dict[str, list[int]] = {}  # problem_id -> [samples, correct]
        self._status: Counter[str] = Counter()
        self._cache: dict[tuple[str, str], Grade] = {}

    def grade(self, rollouts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Grade rows for one batch of rollouts (order kept)."""
        if len(self._cache) > MAX_CACHED_VERDICTS:
            self._cache.clear()
        items = [
            (r["completion"], self.answers[r["problem_id"]], r["finish_reason"]) for r in rollouts
        ]
        grades = grade_many(
            items, timeout_s=self.params.timeout_s, workers=self.params.workers, cache=self._cache
        )
        rows = []
        for r, g in zip(rollouts, grades, strict=True):
            correct = g.status == "correct"
            counts = self._counts.setdefault(r["problem_id"], [0, 0])
            counts[0] += 1
            counts[1] += correct
            self._status[g.status] += 1
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
        return rows

    def pass_rates(self) -> list[dict[str, Any]]:
        """One row per problem seen so far, sorted by problem id."""
        return [
            {
                "problem_id": pid,
                "n_samples": n,
                "n_correct": c,
                "pass_rate": c / n,
                "selected": (not self.params.hard_only) or c == 0,
            }
            for pid, (n, c) in sorted(self._counts.items())
        ]

    def summary(self) -> dict[str, Any]:
        # in problem-id order, as pass_rates(): the float sum must not depend on the file's order
        counts = [nc for _, nc in sorted(self._counts.items())]
        n_problems = len(self._counts)
        return {
            "attempts": sum(self._status.values()),
            "status": dict(sorted(self._status.items())),
            "problems": n_problems,
            "problems_solved_once": sum(1 for _, c in counts if c > 0),
            "problems_selected": sum(1 for _, c in counts if (not self.params.hard_only) or c == 0),
            "mean_pass_rate": (sum(c / n for n, c in counts) / n_problems if n_problems else 0.0),
        }


def write_grades(
    problems_path: str | Path,
    rollouts_path: str | Path,
    grades_path: str | Path,
    pass_rates_path: str | Path,
    params: GradingParams,
    *,
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """The ``grades`` stage: stream the rollouts, write grades and pass rates; return the
    summary. Memory is one batch of rollouts plus the grader's small state."""
    grader = RolloutGrader(read_answers(problems_path), params)
    provenance = {"params": params.model_dump()}
    with ArtifactWriter(grades_path, "grades", provenance=provenance) as out:
        for batch in iter_artifact(
            rollouts_path, "rollouts", columns=ROLLOUT_COLUMNS, batch_rows=batch_rows
        ):
            out.write(grader.grade(batch))
        out.summary = summary = grader.summary()
    with ArtifactWriter(pass_rates_path, "pass_rates", provenance=provenance) as rates:
        rates.write(grader.pass_rates())
        rates.summary = summary
    return summary
