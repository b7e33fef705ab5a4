"""The SFT dataset: TRL prompt-completion rows built from selected interventions.

prompt = the rollout's own rendered chat prompt (token for token what the model saw);
completion = steps 1..location-1 of the failed attempt, exactly as written (separators included),
followed by the intervention: the ``content`` column of the interventions artifact, inserted as is
(with ``interventions.double_newlines`` that stage has already doubled its newlines, so this
stage and ``guided`` insert the same text). The rest of the attempt is discarded. No end-of-turn
token follows the intervention unless ``end_of_turn`` is set, so the model does not learn to stop
after the fix.

Entry point of the ``sft_data`` stage: :func:`write_sft_data`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactError, ArtifactWriter, iter_artifact, select_rows
from .config import SftDataParams
from .steps import prefix_before_step

#: Columns of ``interventions`` an SFT row needs.
INTERVENTION_COLUMNS = ("proposal_id", "rollout_id", "problem_id", "location", "content")


def sft_row(
    rollout: Mapping[str, Any], iv: Mapping[str, Any], end_of_turn_text: str | None
) -> dict[str, Any]:
    """The SFT row of intervention ``iv`` on its failed attempt ``rollout``."""
    prefix = prefix_before_step(rollout["completion"], iv["location"])
    completion = prefix + iv["content"]
    if end_of_turn_text:
        completion += end_of_turn_text
    return {
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


def selected_interventions(
    selected_path: str | Path, interventions_path: str | Path
) -> dict[str, list[dict[str, Any]]]:
    """The selected interventions (only the columns an SFT row needs), by rollout id.

    Streams both artifacts; holds only the selected rows. A selected proposal missing from the
    interventions artifact, or selected but not kept, is an error naming both files.
    """
    wanted: set[str] = set()
    for batch in iter_artifact(selected_path, "selected", columns=("proposal_id", "selected")):
        wanted.update(s["proposal_id"] for s in batch if s["selected"])
    cols = (*INTERVENTION_COLUMNS, "kept")
    ivs = select_rows(interventions_path, "interventions", "proposal_id", wanted, columns=cols)
    by_rollout: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for iv in ivs:
        if not iv.pop("kept"):
            raise ArtifactError(
                f"{selected_path}: proposal {iv['proposal_id']!r} is selected but "
                f"{interventions_path} marks it not kept; rerun the guided stage"
            )
        by_rollout[iv["rollout_id"]].append(iv)
    if len(ivs) != len(wanted):
        raise ArtifactError(
            f"{selected_path}: {len(wanted) - len(ivs)} selected proposal(s) are missing from "
            f"{interventions_path}; rerun the guided stage"
        )
    for ivs in by_rollout.values():
        ivs.sort(key=lambda iv: iv["proposal_id"])
    return by_rollout


def iter_sft_batches(
    by_rollout: Mapping[str, Sequence[Mapping[str, Any]]],
    rollouts_path: str | Path,
    *,
    end_of_turn_text: str | None = None,
    batch_rows: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """SFT rows for the interventions in ``by_rollout``, streaming the rollouts past them.

    Rows come in the rollouts artifact's order, and by proposal id within one attempt. Raises
    :class:`ArtifactError` when an intervention's attempt is not in the rollouts artifact.
    """
    seen = 0
    columns = ("rollout_id", "prompt", "completion")
    for batch in iter_artifact(rollouts_path, "rollouts", columns=columns, batch_rows=batch_rows):
        rows = [
            sft_row(r, iv, end_of_turn_text)
            for r in batch
            for iv in by_rollout.get(r["rollout_id"], ())
        ]
        seen += sum(1 for r in batch if r["rollout_id"] in by_rollout)
        if rows:
            yield rows
    if seen < len(by_rollout):
        raise ArtifactError(
            f"{rollouts_path}: {len(by_rollout) - seen} attempt(s) with a selected intervention "
            "are missing; rerun the pipeline from the rollouts stage"
        )


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


def end_of_turn_text(model_dir: str | Path) -> str:
    """The end-of-turn text of the model's tokenizer (its ``eos_token``)."""
    from transformers import AutoTokenizer

    from .models import resolve_model

    name, revision = resolve_model(model_dir)
    return AutoTokenizer.from_pretrained(name, revision=revision).eos_token


def write_sft_data(
    problems_path: str | Path,
    rollouts_path: str | Path,
    interventions_path: str | Path,
    selected_path: str | Path,
    model_dir: str | Path,
    out_path: str | Path,
    params: SftDataParams,
    *,
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """The ``sft_data`` stage (``params.source``: ``interventions`` or ``reference``); summary.

    For ``interventions`` only the selected interventions are held in memory; the rollouts stream
    past them and each batch of SFT rows is written as it is built. The model folder is read
    only for its end-of-turn text, when ``params.end_of_turn`` asks for it.
    """
    source = params.source
    provenance = {"params": params.model_dump()}
    problems: set[str] = set()
    eot = end_of_turn_text(model_dir) if params.end_of_turn else None
    with ArtifactWriter(out_path, "sft", provenance=provenance) as out:
        if source == "reference":
            # one rollout per problem is enough: build_reference_rows takes the first's prompt
            firsts: dict[str, dict[str, Any]] = {}
            cols = ("problem_id", "prompt")
            for batch in iter_artifact(rollouts_path, "rollouts", columns=cols):
                for r in batch:
                    firsts.setdefault(r["problem_id"], r)
            train = select_rows(problems_path, "problems", "split", {"train"})
            rows = build_reference_rows(train, list(firsts.values()), end_of_turn_text=eot)
            batches: Iterator[list[dict[str, Any]]] = iter([rows])
        elif source == "interventions":
            by_rollout = selected_interventions(selected_path, interventions_path)
            batches = iter_sft_batches(
                by_rollout, rollouts_path, end_of_turn_text=eot, batch_rows=batch_rows
            )
        else:
            raise ValueError(f"unknown sft_data source {source!r}")
        for rows in batches:
            out.write(rows)
            problems.update(r["problem_id"] for r in rows)
        out.summary = summary = {
            "rows": out.rows_written,
            "problems": len(problems),
            "end_of_turn": bool(eot),
            "source": source,
        }
    return summary
