"""Interventions: parse each proposal's block, then filter by a named chain with counted drops.

Every proposal yields one row, kept or not; ``drop_reason`` says which filter removed it:

1. ``skipped`` - the proposal was never generated (its prompt did not fit, the attempt was empty);
2. a parse status from :data:`intervention_training.interventions.STATUSES` (no block, bad JSON,
   location out of range, ...);
3. ``content_too_long`` - the content exceeds ``max_content_chars``;
4. ``leaked`` - the content states the reference answer (judged by mathematical equivalence,
   see :mod:`intervention_training.leakage`);
5. ``duplicate`` - dropped by the per-attempt deduplication policy.

Deduplication policies (per failed attempt):

- ``earliest_location`` (default): among the surviving proposals of one attempt, identical
  contents (after collapsing whitespace and case) at the same location count once; the rest are
  ranked by location (earliest first: the first error is the one to fix), ties by proposal index,
  and the first ``max_per_attempt`` are kept. With ``max_per_attempt: 1`` this is the paper's
  "one intervention per failed attempt".
- ``first_proposal``: as above but ranked by proposal index only.
- ``none``: keep every surviving proposal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .config import InterventionsParams
from .interventions import parse_proposal
from .leakage import leaks_answer


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _dedupe(rows: list[dict[str, Any]], policy: str, keep: int) -> None:
    """Mark duplicates in place among rows whose ``kept`` is True, per rollout."""
    if policy == "none":
        return
    by_attempt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["kept"]:
            by_attempt[r["rollout_id"]].append(r)
    for group in by_attempt.values():
        if policy == "earliest_location":
            group.sort(key=lambda r: (r["location"], r["proposal_index"]))
        else:
            group.sort(key=lambda r: r["proposal_index"])
        seen: set[tuple[int, str]] = set()
        n_kept = 0
        for r in group:
            key = (r["location"], _norm(r["content"]))
            if key in seen or n_kept >= keep:
                r["kept"], r["drop_reason"] = False, "duplicate"
                continue
            seen.add(key)
            n_kept += 1


def build_interventions(
    proposals: Sequence[Mapping[str, Any]],
    answers: Mapping[str, str],
    params: InterventionsParams,
    *,
    leak_timeout_s: float = 5.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of ``interventions`` (one per proposal) and the summary of the filter chain."""
    rows: list[dict[str, Any]] = []
    for p in proposals:
        row: dict[str, Any] = {
            "proposal_id": p["proposal_id"],
            "rollout_id": p["rollout_id"],
            "problem_id": p["problem_id"],
            "sample_id": p["sample_id"],
            "proposal_index": p["proposal_index"],
            "n_steps": p["n_steps"],
            "parse_status": "skipped",
            "location": None,
            "content": None,
            "repairs": [],
            "leaked": None,
            "leak_evidence": None,
            "kept": False,
            "drop_reason": "skipped",
        }
        rows.append(row)
        if p["status"] != "generated" or p["text"] is None:
            continue
        parsed = parse_proposal(p["text"], p["n_steps"])
        row.update(
            parse_status=parsed.status,
            location=parsed.location,
            content=parsed.content,
            repairs=list(parsed.repairs),
        )
        if parsed.status != "ok":
            row["drop_reason"] = parsed.status
            continue
        if len(parsed.content or "") > params.max_content_chars:
            row["drop_reason"] = "content_too_long"
            continue
        if params.leak_check:
            verdict = leaks_answer(
                parsed.content, answers[p["problem_id"]], timeout_s=leak_timeout_s
            )
            row["leaked"] = verdict.leaked
            row["leak_evidence"] = verdict.evidence if verdict.leaked else None
            if verdict.leaked:
                row["drop_reason"] = "leaked"
                continue
        row["kept"], row["drop_reason"] = True, None
    _dedupe(rows, params.dedup, params.max_per_attempt)
    summary = {
        "proposals": len(rows),
        "parsed": sum(1 for r in rows if r["parse_status"] == "ok"),
        "kept": sum(1 for r in rows if r["kept"]),
        "attempts_with_intervention": len({r["rollout_id"] for r in rows if r["kept"]}),
        "dropped": dict(sorted(Counter(r["drop_reason"] for r in rows if not r["kept"]).items())),
    }
    return rows, summary
