"""The funnel: how many items survive each stage, and why the others were dropped.

Every count is computed from the rows of the artifacts on disk (never from their metadata
summaries), so the funnel describes exactly the files a person would open:

=====================  =================================================  ======================
stage                  counted as                                         drops (reason: rows)
=====================  =================================================  ======================
problems               rows of problems
training problems      problems with ``split == "train"``                 held out for evaluation
attempts               rows of rollouts                                   (K per problem)
failed attempts        grades whose status is not ``correct``             correct
self-verified          distinct ``rollout_id`` in proposals               hard_only / status
proposals              rows of proposals                                  (M per attempt)
generated              proposals with ``status == "generated"``           skip reason
parsed                 interventions with ``parse_status == "ok"``        parse status
not leaked             parsed, not dropped as too long or leaked          drop_reason
deduplicated (kept)    interventions with ``kept``                        duplicate
guided success         selected rows with ``selected``                    too few correct
SFT rows               rows of sft
=====================  =================================================  ======================

Where two consecutive stages count the same things, the count must equal the previous count
minus the listed drops; any difference (artifacts from different runs) is shown as an
``unexplained`` drop rather than hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .data import Artifacts, CliInputError, Row


@dataclass
class FunnelStage:
    """One line of the funnel. ``count`` is ``None`` when the artifact it needs is missing."""

    key: str
    label: str
    unit: str
    count: int | None
    drops: dict[str, int] = field(default_factory=dict)
    note: str = ""
    #: True when this stage counts the same things as the previous one (drops must add up).
    same_unit: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Only the columns each count needs are read: on large artifacts, a small part of the rows' memory.
GRADE_COLUMNS = ("rollout_id", "problem_id", "status", "correct")
PROPOSAL_COLUMNS = ("rollout_id", "status", "skip_reason")


def _counter(values: list[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def _reason_head(reason: str | None) -> str:
    """``"prompt_too_long: 123 prompt + ..."`` -> ``"prompt_too_long"``."""
    return (reason or "unknown").split(":", 1)[0].strip() or "unknown"


def _missing(key: str, label: str, unit: str, artifact: str) -> FunnelStage:
    return FunnelStage(key, label, unit, None, note=f"{artifact}.parquet not found")


def _problem_stages(problems: list[Row] | None) -> list[FunnelStage]:
    if problems is None:
        return [
            _missing("problems", "problems", "problems", "problems"),
            _missing("train_problems", "training problems", "problems", "problems"),
        ]
    train = sum(p["split"] == "train" for p in problems)
    held = len(problems) - train
    return [
        FunnelStage("problems", "problems", "problems", len(problems), same_unit=False),
        FunnelStage(
            "train_problems",
            "training problems",
            "problems",
            train,
            {"held out for evaluation": held} if held else {},
        ),
    ]


def _attempt_stages(art: Artifacts, n_train: int | None) -> list[FunnelStage]:
    n_rollouts, grades = art.count("rollouts"), art.get("grades", GRADE_COLUMNS)
    out = []
    if n_rollouts is None:
        out.append(_missing("attempts", "attempts", "attempts", "rollouts"))
    else:
        per = f"{n_rollouts / n_train:g} per training problem" if n_train else ""
        out.append(
            FunnelStage("attempts", "attempts", "attempts", n_rollouts, note=per, same_unit=False)
        )
    if grades is None:
        out.append(_missing("failed", "failed attempts", "attempts", "grades"))
        return out
    failed = [g for g in grades if not g["correct"]]
    n_correct = len(grades) - len(failed)
    note = ", ".join(f"{k} {v}" for k, v in _counter([g["status"] for g in failed]).items())
    out.append(
        FunnelStage(
            "failed",
            "failed attempts",
            "attempts",
            len(failed),
            {"correct": n_correct} if n_correct else {},
            note=note,
        )
    )
    return out


def _verified_stage(art: Artifacts) -> FunnelStage:
    grades, proposals = art.get("grades", GRADE_COLUMNS), art.get("proposals", PROPOSAL_COLUMNS)
    if proposals is None or grades is None:
        return _missing("self_verified", "self-verified attempts", "attempts", "proposals")
    verified = {p["rollout_id"] for p in proposals}
    rates = art.get("pass_rates", ("problem_id", "selected"))
    selected = {r["problem_id"] for r in rates or [] if r["selected"]}
    have_rates = rates is not None
    reasons = []
    for g in grades:
        if g["correct"] or g["rollout_id"] in verified:
            continue
        if have_rates and g["problem_id"] not in selected:
            reasons.append("problem solved by another attempt (hard_only)")
        else:
            reasons.append(f"status {g['status']} not in attempt_statuses")
    return FunnelStage(
        "self_verified", "self-verified attempts", "attempts", len(verified), _counter(reasons)
    )


def _proposal_stages(art: Artifacts, n_verified: int | None) -> list[FunnelStage]:
    proposals = art.get("proposals", PROPOSAL_COLUMNS)
    if proposals is None:
        return [
            _missing("proposals", "proposals", "proposals", "proposals"),
            _missing("generated", "generated proposals", "proposals", "proposals"),
        ]
    per = f"{len(proposals) / n_verified:g} per attempt" if n_verified else ""
    skipped = [_reason_head(p["skip_reason"]) for p in proposals if p["status"] != "generated"]
    return [
        FunnelStage(
            "proposals", "proposals", "proposals", len(proposals), note=per, same_unit=False
        ),
        FunnelStage(
            "generated",
            "generated proposals",
            "proposals",
            len(proposals) - len(skipped),
            _counter([f"skipped: {s}" for s in skipped]),
        ),
    ]


def _intervention_stages(ivs: list[Row] | None) -> list[FunnelStage]:
    names = [
        ("parsed", "parsed interventions"),
        ("not_leaked", "within limits, not leaked"),
        ("kept", "deduplicated (kept)"),
    ]
    if ivs is None:
        return [_missing(k, label, "interventions", "interventions") for k, label in names]
    generated = [r for r in ivs if r["parse_status"] != "skipped"]
    parsed = [r for r in generated if r["parse_status"] == "ok"]
    bad_parse = _counter(
        [
            "no error found"
            if r["parse_status"] == "no_error_found"
            else f"parse: {r['parse_status']}"
            for r in generated
            if r["parse_status"] != "ok"
        ]
    )
    filtered = [r for r in parsed if r["drop_reason"] in ("content_too_long", "leaked")]
    survivors = len(parsed) - len(filtered)
    dupes = sum(r["drop_reason"] == "duplicate" for r in parsed)
    kept = sum(r["kept"] for r in ivs)
    return [
        FunnelStage("parsed", names[0][1], "interventions", len(parsed), bad_parse),
        FunnelStage(
            "not_leaked",
            names[1][1],
            "interventions",
            survivors,
            _counter([r["drop_reason"] for r in filtered]),
        ),
        FunnelStage(
            "kept", names[2][1], "interventions", kept, {"duplicate": dupes} if dupes else {}
        ),
    ]


def _final_stages(art: Artifacts) -> list[FunnelStage]:
    selected = art.get("selected", ("selected", "n_continuations"))
    conts = art.get("continuations", ("correct",))
    n_sft = art.count("sft")
    out = []
    if selected is None:
        out.append(_missing("guided", "guided success", "interventions", "selected"))
    else:
        ok = sum(s["selected"] for s in selected)
        rejected = len(selected) - ok
        checked = any(s["n_continuations"] for s in selected)
        note = (
            f"{sum(c['correct'] for c in conts or [])} of {len(conts or [])} continuations correct"
            if checked
            else "guided check off: every kept intervention selected unchecked"
        )
        drops = {"too few correct continuations (min_correct)": rejected} if rejected else {}
        out.append(FunnelStage("guided", "guided success", "interventions", ok, drops, note))
    if n_sft is None:
        out.append(_missing("sft", "SFT rows", "rows", "sft"))
    else:
        out.append(FunnelStage("sft", "SFT rows", "rows", n_sft))
    return out


def _check_sums(stages: list[FunnelStage]) -> None:
    """Add an ``unexplained`` drop wherever counts of the same things do not add up."""
    for prev, cur in zip(stages, stages[1:], strict=False):
        if not cur.same_unit or prev.count is None or cur.count is None:
            continue
        gap = prev.count - cur.count - sum(cur.drops.values())
        if gap:
            cur.drops["unexplained (artifacts from different runs?)"] = gap


def compute_funnel(art: Artifacts) -> list[FunnelStage]:
    """The funnel of the artifacts in ``art``'s folder; raises when none of them exists."""
    if not art.any_present():
        raise CliInputError(f"{art.data_dir}: no pipeline artifacts found")
    problems = art.get("problems", ("split",))
    stages = _problem_stages(problems)
    stages += _attempt_stages(art, stages[1].count)
    verified = _verified_stage(art)
    stages.append(verified)
    stages += _proposal_stages(art, verified.count)
    stages += _intervention_stages(
        art.get("interventions", ("parse_status", "drop_reason", "kept"))
    )
    stages += _final_stages(art)
    _check_sums(stages)
    return stages


def funnel_json(art: Artifacts, stages: list[FunnelStage]) -> dict[str, Any]:
    """The funnel as a JSON-ready mapping."""
    return {"data_dir": str(art.data_dir), "stages": [s.to_dict() for s in stages]}
