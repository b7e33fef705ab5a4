"""The SFT dataset: TRL prompt-completion rows built from selected interventions.

prompt = the rollout's own rendered chat prompt (token for token what the model saw);
completion = steps 1..location-1 of the failed attempt, exactly as written (separators included),
followed by the intervention: the ``content`` column of the interventions artifact, inserted as is
(with ``interventions.double_newlines`` that stage has already doubled its newlines, so this
stage and ``guided`` insert the same text). The rest of the attempt is discarded. No end-of-turn
token follows the intervention unless ``end_of_turn`` is set, so the model does not learn to stop
after the fix.

``variant`` (the paper's Table 2 ablation of the SFT data; ``source: interventions`` only):

- ``prefix_intervention`` (the default, InT): as above;
- ``intervention_only``: the completion is the intervention alone (the ``prefix`` column is
  empty; ``location`` still names the step it replaced);
- ``prefix_intervention_suffix``: prefix + intervention + the first correct (lowest
  ``continuation_index``) continuation the guided stage sampled from exactly that text, appended
  as is (the model's own tokens after it). Needs the continuations artifact of a guided stage
  run with ``guided.enabled``; a selected intervention with no correct continuation (possible
  with ``guided.min_correct: 0``) has no row and is counted in the summary.

Entry point of the ``sft_data`` stage: :func:`write_sft_data`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import ArtifactError, ArtifactWriter, iter_artifact, read_metadata, select_rows
from .config import ConfigError, GuidedParams, SftDataParams
from .steps import prefix_before_step

#: Columns of ``interventions`` an SFT row needs.
INTERVENTION_COLUMNS = ("proposal_id", "rollout_id", "problem_id", "location", "content")


#: The completions ``sft_data.variant`` names (see the module docstring).
VARIANTS = ("prefix_intervention", "intervention_only", "prefix_intervention_suffix")
SUFFIX_VARIANT = "prefix_intervention_suffix"


def sft_row(
    rollout: Mapping[str, Any],
    iv: Mapping[str, Any],
    end_of_turn_text: str | None,
    *,
    variant: str = "prefix_intervention",
    suffix: str | None = None,
) -> dict[str, Any]:
    """The SFT row of intervention ``iv`` on its failed attempt ``rollout``.

    ``suffix`` (the correct guided continuation) is required by, and only allowed with, the
    ``prefix_intervention_suffix`` variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown sft_data variant {variant!r}; expected one of {VARIANTS}")
    if (suffix is not None) != (variant == SUFFIX_VARIANT):
        raise ValueError(f"a suffix goes with variant {SUFFIX_VARIANT} and only with it")
    if variant == "intervention_only":
        prefix = ""
    else:
        prefix = prefix_before_step(rollout["completion"], iv["location"])
    completion = prefix + iv["content"] + (suffix or "")
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


def correct_continuations(
    continuations_path: str | Path, proposal_ids: Collection[str]
) -> dict[str, str]:
    """``proposal_id -> completion`` of the first correct continuation (lowest
    ``continuation_index``) of each proposal in ``proposal_ids`` that has one (streamed: only
    the chosen texts are held)."""
    wanted = set(proposal_ids)
    best: dict[str, tuple[int, str]] = {}
    cols = ("proposal_id", "continuation_index", "completion", "correct")
    for batch in iter_artifact(continuations_path, "continuations", columns=cols):
        for c in batch:
            pid = c["proposal_id"]
            if not c["correct"] or pid not in wanted:
                continue
            if pid not in best or c["continuation_index"] < best[pid][0]:
                best[pid] = (c["continuation_index"], c["completion"])
    return {pid: text for pid, (_, text) in best.items()}


def check_guided_enabled(
    continuations_path: str | Path | None, guided: GuidedParams | None = None
) -> None:
    """Raise :class:`ConfigError` unless the suffix variant can be built: a continuations
    artifact is given and was written by a guided stage with ``enabled: true`` (as recorded in
    its provenance), and ``guided`` (when given) is enabled."""
    need = f"sft_data.variant {SUFFIX_VARIANT} needs guided.enabled: true"
    if guided is not None and not guided.enabled:
        raise ConfigError(f"{need} (it is false): the suffix is a correct guided continuation")
    if continuations_path is None:
        raise ConfigError(
            f"{need} and the guided stage's continuations artifact (--continuations "
            "data/continuations.parquet); none was given"
        )
    meta = read_metadata(continuations_path)
    recorded = (meta["provenance"].get("params") or {}).get("enabled")
    if recorded is None:
        recorded = meta["summary"].get("enabled")
    if recorded is False:
        raise ConfigError(
            f"{need}: {continuations_path} was written with guided.enabled: false (no "
            "continuation was sampled); set guided.enabled: true and rerun the guided stage"
        )


def iter_sft_batches(
    by_rollout: Mapping[str, Sequence[Mapping[str, Any]]],
    rollouts_path: str | Path,
    *,
    end_of_turn_text: str | None = None,
    batch_rows: int | None = None,
    variant: str = "prefix_intervention",
    suffixes: Mapping[str, str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """SFT rows for the interventions in ``by_rollout``, streaming the rollouts past them.

    Rows come in the rollouts artifact's order, and by proposal id within one attempt. Raises
    :class:`ArtifactError` when an intervention's attempt is not in the rollouts artifact.
    With the ``prefix_intervention_suffix`` variant, ``suffixes`` maps a proposal id to its
    continuation; an intervention without one has no row.
    """
    if (suffixes is not None) != (variant == SUFFIX_VARIANT):
        raise ValueError(f"suffixes go with variant {SUFFIX_VARIANT} and only with it")
    seen = 0
    columns = ("rollout_id", "prompt", "completion")
    for batch in iter_artifact(rollouts_path, "rollouts", columns=columns, batch_rows=batch_rows):
        rows = [
            sft_row(
                r,
                iv,
                end_of_turn_text,
                variant=variant,
                suffix=None if suffixes is None else suffixes[iv["proposal_id"]],
            )
            for r in batch
            for iv in by_rollout.get(r["rollout_id"], ())
            if suffixes is None or iv["proposal_id"] in suffixes
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
    continuations_path: str | Path | None = None,
    guided: GuidedParams | None = None,
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """The ``sft_data`` stage (``params.source``: ``interventions`` or ``reference``); summary.

    For ``interventions`` only the selected interventions are held in memory; the rollouts stream
    past them and each batch of SFT rows is written as it is built. The model folder is read
    only for its end-of-turn text, when ``params.end_of_turn`` asks for it.

    ``params.variant`` ``prefix_intervention_suffix`` reads ``continuations_path`` (the guided
    stage's continuations artifact) and fails with :class:`ConfigError` when that stage ran
    with ``guided.enabled: false`` (or ``guided``, when given, is disabled). The summary then
    counts the selected interventions dropped for want of a correct continuation.
    """
    source = params.source
    variant = params.variant
    if source == "reference" and variant != "prefix_intervention":
        # SftDataParams refuses this too; params built with model_construct skip that check
        raise ConfigError(f"sft_data.variant {variant!r} applies to source 'interventions' only")
    if variant == SUFFIX_VARIANT:
        check_guided_enabled(continuations_path, guided)
    provenance = {"params": params.model_dump()}
    problems: set[str] = set()
    extra: dict[str, Any] = {}
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
            suffixes = None
            if variant == SUFFIX_VARIANT:
                assert continuations_path is not None  # check_guided_enabled saw to it
                ids = [iv["proposal_id"] for ivs in by_rollout.values() for iv in ivs]
                suffixes = correct_continuations(continuations_path, ids)
                extra["no_correct_continuation"] = len(ids) - len(suffixes)
            batches = iter_sft_batches(
                by_rollout,
                rollouts_path,
                end_of_turn_text=eot,
                batch_rows=batch_rows,
                variant=variant,
                suffixes=suffixes,
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
        if variant != "prefix_intervention":  # the default's summary keeps its keys
            summary["variant"] = variant
        summary.update(extra)
    return summary
