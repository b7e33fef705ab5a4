"""One intervention, told as a story: problem, failed attempt, first error, fix, outcome.

The attempt's steps are numbered as in the proposal prompt. The first-error step (the
intervention's ``location``) is marked ``>>``, the intervention follows it marked ``++`` (it takes
that step's place in the SFT completion), and steps after it are dimmed: they are not used.
Context comes from the other artifacts of the same folder when they exist: problems, rollouts,
grades, proposals, continuations, selected and sft.
"""

from __future__ import annotations

from rich.text import Text

from ..steps import split_steps
from .data import Artifacts, Row
from .render import block, clip, field, header, step_lines

#: Steps after the first error shown without ``--full``.
AFTER = 2


def _tag(iv: Row) -> tuple[str, str]:
    if iv["kept"]:
        return "kept", "bold green"
    return f"dropped: {iv['drop_reason']}", "bold red"


def _attempt(iv: Row, art: Artifacts, full: bool) -> list[Text]:
    rollout = art.by_key("rollouts").get(iv["rollout_id"])
    if rollout is None:
        return [field("attempt", f"{iv['rollout_id']} (rollouts.parquet not found)", "dim")]
    grade = art.by_key("grades").get(iv["rollout_id"])
    verdict = ""
    if grade:
        verdict = grade["status"]
        if grade["extracted"] is not None:
            verdict += f", answered {grade['extracted']}"
        verdict += " · "
    steps = split_steps(rollout["completion"])
    out = [
        field(
            f"failed attempt {iv['rollout_id']} (sample {iv['sample_id']})",
            f"{verdict}{len(steps)} step{'' if len(steps) == 1 else 's'} · "
            f"{rollout['n_tokens']} tokens · "
            f"finish {rollout['finish_reason']}",
        )
    ]
    loc = iv["location"] if iv["parse_status"] == "ok" else None
    for i, step in enumerate(steps, start=1):
        text = clip(step, full)
        if loc is None or i < loc:
            out += step_lines(i, text, style="none")
        elif i == loc:
            note = f"first error (step {loc} of {len(steps)})"
            out += step_lines(i, text, ">>", "bold red", note)
            out += step_lines(
                None, iv["content"], "++", "bold green", f"intervention, replaces step {i}"
            )
        elif full or i <= loc + AFTER:
            out += step_lines(
                i, text, style="dim", note="after the error: not used" if full else ""
            )
        else:
            out.append(Text(f"       … {len(steps) - i + 1} more steps (--full shows them)", "dim"))
            break
    return out


def _outcome(iv: Row, art: Artifacts, full: bool) -> list[Text]:
    out: list[Text] = []
    if iv["repairs"]:
        out.append(field("parser repairs", ", ".join(iv["repairs"])))
    if iv["leaked"]:
        out.append(field("leak evidence", iv["leak_evidence"] or "", "red"))
    if iv["parse_status"] not in ("ok", "skipped"):
        prop = art.by_key("proposals").get(iv["proposal_id"])
        if prop and prop["text"]:
            out += [field("end of the proposal's text", "")] + block(
                prop["text"][-400:], style="dim"
            )
    if not iv["kept"]:
        return out
    sel = art.by_key("selected").get(iv["proposal_id"])
    conts = [c for c in art.get("continuations") or [] if c["proposal_id"] == iv["proposal_id"]]
    if sel is None:
        out.append(field("guided", "selected.parquet not found", "dim"))
    elif sel["n_continuations"] == 0:
        out.append(field("guided", "check off: selected unchecked"))
    else:
        verdict = "selected" if sel["selected"] else "rejected"
        style = "green" if sel["selected"] else "red"
        out.append(
            field(
                "guided continuations",
                f"{sel['n_correct']} of {sel['n_continuations']} correct → {verdict}",
                style,
            )
        )
        for c in sorted(conts, key=lambda c: c["continuation_index"]):
            ans = c["extracted"] if c["extracted"] is not None else "no answer"
            line = f"#{c['continuation_index']} {c['status']}: {ans} "
            line += f"({c['finish_reason']}, {c['n_tokens']} tokens)"
            out.append(Text("    " + line, "green" if c["correct"] else "dim"))
            if full:
                out += block(c["completion"], "        ", "dim")
    sft = art.get("sft")
    if sft is not None:
        used = any(r["proposal_id"] == iv["proposal_id"] for r in sft)
        out.append(field("sft", "included" if used else "not included"))
    return out


def intervention_card(iv: Row, art: Artifacts, full: bool) -> list[Text]:
    """The card of one intervention row (kept or dropped)."""
    tag, style = _tag(iv)
    out = [header("intervention", iv["proposal_id"], tag, style)]
    problem = art.by_key("problems").get(iv["problem_id"])
    if problem:
        out.append(field(f"problem {iv['problem_id']}", ""))
        out += block(clip(problem["problem"], full))
        out.append(field("reference answer", problem["answer"], "bold"))
    else:
        out.append(field("problem", f"{iv['problem_id']} (problems.parquet not found)", "dim"))
    out += _attempt(iv, art, full)
    if iv["parse_status"] != "ok":
        out.append(field("no intervention", f"parse status {iv['parse_status']}", "red"))
    out += _outcome(iv, art, full)
    return out
