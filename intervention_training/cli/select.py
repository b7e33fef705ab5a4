"""Row filters for ``show``: by problem, sample, status or key, the same way on every artifact."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import ArtifactError, iter_artifact
from ..schemas import KEYS
from .data import Artifacts, CliInputError, Row


@dataclass(frozen=True)
class RowFilter:
    """What ``show`` keeps: every set field must match (``None`` matches everything)."""

    problem: str | None = None
    sample: int | None = None
    status: str | None = None
    key: str | None = None


def sample_of(row: Row) -> int | None:
    """The attempt's sample number: ``sample_id``, or the last part of the row's rollout id."""
    if row.get("sample_id") is not None:
        return int(row["sample_id"])
    rollout = row.get("rollout_id")
    if rollout is None and row.get("proposal_id"):
        rollout = row["proposal_id"].rsplit("/", 1)[0]
    tail = (rollout or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def statuses(name: str, row: Row, art: Artifacts) -> set[str]:
    """The status words ``--status`` matches for one row of artifact ``name``."""
    if name == "problems":
        return {row["split"]}
    if name == "rollouts":
        grade = art.by_key("grades", columns=("status",)).get(row["rollout_id"])
        return {row["finish_reason"]} | ({grade["status"]} if grade else set())
    if name == "grades":
        return {row["status"]} | (set() if row["correct"] else {"failed"})
    if name == "pass_rates":
        return {
            "selected" if row["selected"] else "not_selected",
            "solved" if row["n_correct"] else "unsolved",
        }
    if name == "proposals":
        reason = (row["skip_reason"] or "").split(":", 1)[0]
        return {row["status"]} | ({reason} if reason else set())
    if name == "interventions":
        if row["kept"]:
            return {"kept", row["parse_status"]}
        return {"dropped", row["parse_status"], row["drop_reason"] or ""}
    if name == "continuations":
        return {row["status"], row["finish_reason"]} | ({"correct"} if row["correct"] else set())
    if name == "selected":
        return {"selected" if row["selected"] else "rejected"}
    raise CliInputError(f"--status does not apply to {name!r} rows")


def _problem_matches(pattern: str, problem_id: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(problem_id, pattern)
    return problem_id == pattern


def _check(name: str, flt: RowFilter) -> set[str] | None:
    if flt.sample is not None and name in ("problems", "pass_rates"):
        raise CliInputError(f"--sample does not apply to {name!r} rows (one row per problem)")
    return {s.strip() for s in flt.status.split(",")} if flt.status else None


def _matches(name: str, row: Row, flt: RowFilter, wanted: set[str] | None, art: Artifacts) -> bool:
    if flt.problem is not None and not _problem_matches(flt.problem, row["problem_id"]):
        return False
    if flt.sample is not None and sample_of(row) != flt.sample:
        return False
    if flt.key is not None and row[KEYS[name]] != flt.key:
        return False
    return wanted is None or bool(wanted & statuses(name, row, art))


def first_matches(
    name: str, path: Path, flt: RowFilter, art: Artifacts, limit: int
) -> tuple[list[Row], int]:
    """The first ``limit`` rows (0: all) of the artifact file that match ``flt``, and how many
    match in all; the file is streamed, so only the rows kept are held."""
    wanted = _check(name, flt)
    shown: list[Row] = []
    n = 0
    try:
        for batch in iter_artifact(path, name):
            for row in batch:
                if _matches(name, row, flt, wanted, art):
                    n += 1
                    if not limit or len(shown) < limit:
                        shown.append(row)
    except ArtifactError as exc:
        raise CliInputError(str(exc)) from None
    return shown, n


def restrict_context(art: Artifacts, rows: list[Row]) -> None:
    """Have ``art`` read only the context the cards of ``rows`` show (their problems,
    attempts, grades, proposals, continuations, selection and SFT rows)."""
    problems = {r["problem_id"] for r in rows if r.get("problem_id")}
    rollouts = {r["rollout_id"] for r in rows if r.get("rollout_id")}
    proposals = {r["proposal_id"] for r in rows if r.get("proposal_id")}
    art.restrict("problems", problems)
    art.restrict("rollouts", rollouts)
    art.restrict("grades", rollouts)
    for name in ("proposals", "selected", "sft"):
        art.restrict(name, proposals)
    art.restrict("continuations", proposals, column="proposal_id")
