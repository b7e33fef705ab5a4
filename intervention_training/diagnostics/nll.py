"""The ``nll`` stage: per-token NLL of each source's SFT rows under the base model."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactError, read_artifact, write_artifact, write_json
from ..config import (
    ConfigError,
    DiagnosticsParams,
    SftDataParams,
)
from ..sft_data import SUFFIX_VARIANT, check_guided_enabled, write_sft_data
from ..training.sft import IGNORE_INDEX, tokenize_sft_rows
from .scoring import (
    choose_subset,
    load_scoring_model,
    ratio_interval,
    score_for_stage,
)

#: Every source of SFT data the ``nll`` stage knows, in its table's order.
SOURCES = ("prefix_intervention", "intervention_only", "prefix_intervention_suffix", "reference")


# --- nll -------------------------------------------------------------------------------------


def source_params(source: str, end_of_turn: bool) -> SftDataParams:
    """The ``sft_data`` section that builds the rows of ``source``."""
    if source == "reference":
        return SftDataParams(end_of_turn=end_of_turn, source="reference")
    if source not in SOURCES:
        raise ValueError(f"unknown diagnostics source {source!r}; expected one of {SOURCES}")
    return SftDataParams(end_of_turn=end_of_turn, source="interventions", variant=source)


def source_rows(
    sources: Iterable[str],
    problems_path: str | Path,
    rollouts_path: str | Path,
    interventions_path: str | Path,
    selected_path: str | Path,
    model_dir: str | Path,
    *,
    continuations_path: str | Path | None = None,
    end_of_turn: bool = False,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """``({source: SFT rows}, {skipped source: reason})``.

    Each source's rows are what the ``sft_data`` stage writes with that source/variant (its
    entry point runs into a temporary folder and the rows are read back). The suffix variant is
    skipped when the continuations were written with ``guided.enabled: false`` (or are not
    given) or when no selected intervention has a correct continuation; any source with no
    rows is skipped.
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="int-nll-") as tmp:
        for source in sources:
            if source == SUFFIX_VARIANT:
                try:
                    check_guided_enabled(continuations_path)
                except ConfigError as exc:
                    skipped[source] = f"no guided continuations: {exc}"
                    continue
            out = Path(tmp) / f"{source}.parquet"
            summary = write_sft_data(
                problems_path,
                rollouts_path,
                interventions_path,
                selected_path,
                model_dir,
                out,
                source_params(source, end_of_turn),
                continuations_path=continuations_path,
            )
            got = read_artifact(out, "sft").to_pylist()
            if got:
                rows[source] = got
            elif source == SUFFIX_VARIANT:
                missing = summary.get("no_correct_continuation", 0)
                skipped[source] = (
                    "no selected intervention has a correct guided continuation "
                    f"({missing} without one)"
                )
            elif source == "reference":
                skipped[source] = "no training problem has a rollout (no reference rows)"
            else:
                skipped[source] = "no selected intervention (the SFT data would be empty)"
    return rows, skipped


def sft_sequence(
    row: Mapping[str, Any],
    tokenizer: Any,
    *,
    append_eos: bool = False,
    max_length: int | None = None,
) -> tuple[list[int], int] | None:
    """``(input ids, prompt length)`` of an SFT row exactly as the ``sft`` stage trains on it:
    :func:`~.training.sft.tokenize_sft_rows` (with ``sft.append_eos``), then cut to the first
    ``max_length`` tokens as TRL cuts them (``sft.trainer.max_length``); the loss tokens are the
    ids past the prompt. None when no completion token is left (the trainer drops the row)."""
    examples, skipped = tokenize_sft_rows([dict(row)], tokenizer, append_eos=append_eos)
    if skipped:
        return None
    (example,) = examples
    labels = example["labels"]
    n_prompt = next((i for i, v in enumerate(labels) if v != IGNORE_INDEX), len(labels))
    ids = list(example["input_ids"])
    if max_length is not None:
        ids = ids[:max_length]
    if len(ids) <= n_prompt:
        return None
    return ids, n_prompt


def sft_max_length(trainer: Mapping[str, Any]) -> int | None:
    """The SFT trainer's ``max_length``: ``sft.trainer.max_length``, else TRL's default."""
    if "max_length" in trainer:
        return trainer["max_length"]
    import dataclasses

    from trl import SFTConfig

    return {f.name: f.default for f in dataclasses.fields(SFTConfig)}["max_length"]


def nll_metrics(
    rows: Sequence[Mapping[str, Any]],
    sources: Sequence[str],
    *,
    skipped: Mapping[str, str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{source: {rows, tokens, nll_per_token, nll_per_token_lo, nll_per_token_hi,
    nll_row_mean}}`` from ``nll`` artifact rows, in ``sources`` order, then ``{source:
    {"skipped": reason}}``. ``nll_per_token`` is token-weighted (total NLL / total tokens), its
    interval a bootstrap over rows; ``nll_row_mean`` is the plain mean of the rows' own
    per-token NLL."""
    out: dict[str, dict[str, Any]] = {}
    for source in sources:
        if skipped and source in skipped:
            continue
        mine = [r for r in rows if r["source"] == source]
        sums = [r["nll_sum"] for r in mine]
        counts = [r["n_tokens"] for r in mine]
        tokens = int(sum(counts))
        lo, hi = ratio_interval(sums, counts, resamples=resamples, seed=seed)
        out[source] = {
            "rows": len(mine),
            "tokens": tokens,
            "nll_per_token": sum(sums) / tokens if tokens else None,
            "nll_per_token_lo": lo,
            "nll_per_token_hi": hi,
            "nll_row_mean": (float(np.mean([r["nll_per_token"] for r in mine])) if mine else None),
        }
    for source, reason in (skipped or {}).items():
        out[source] = {"skipped": reason}
    return out


def write_nll(
    problems_path: str | Path,
    rollouts_path: str | Path,
    interventions_path: str | Path,
    selected_path: str | Path,
    model_dir: str | Path,
    out_path: str | Path,
    metrics_path: str | Path,
    params: DiagnosticsParams,
    *,
    continuations_path: str | Path | None = None,
    end_of_turn: bool = False,
    append_eos: bool = False,
    max_length: int | None = None,
) -> dict[str, Any]:
    """The ``nll`` stage: score each source's SFT rows under the base model in ``model_dir``;
    write one row per scored SFT row to ``out_path`` (artifact ``nll``) and the table of
    :func:`nll_metrics` to ``metrics_path``; return the summary.

    ``end_of_turn``: ``sft_data.end_of_turn`` (the rows then end with the end-of-turn text, and
    its tokens are scored); ``append_eos`` and ``max_length``: ``sft.append_eos`` and the SFT
    trainer's ``max_length``, so that the scored tokens are the SFT loss tokens. Every input is
    read and checked before the model loads and both outputs are written only at the end
    (atomically): bad input leaves earlier outputs as they were. Raises
    :class:`~.artifacts.ArtifactError` when no source has a row.
    """
    by_source, skipped = source_rows(
        params.sources,
        problems_path,
        rollouts_path,
        interventions_path,
        selected_path,
        model_dir,
        continuations_path=continuations_path,
        end_of_turn=end_of_turn,
    )
    if not by_source:
        reasons = "; ".join(f"{s}: {r}" for s, r in skipped.items())
        raise ArtifactError(
            f"{rollouts_path}, {selected_path}: no SFT row from any diagnostics source "
            f"({reasons}); rerun the pipeline up to sft_data"
        )
    chosen: dict[str, list[dict[str, Any]]] = {}
    for source, rows in by_source.items():
        keep = choose_subset([r["proposal_id"] for r in rows], params.max_rows, params.seed, "nll")
        chosen[source] = [r for r in rows if r["proposal_id"] in keep]
    model, tokenizer, model_provenance = load_scoring_model(
        model_dir, device=params.device, dtype=params.dtype
    )
    units: list[tuple[str, dict[str, Any], int]] = []  # (source, SFT row, prompt tokens)
    sequences: list[tuple[list[int], int]] = []
    empty: dict[str, int] = {}
    for source, rows in chosen.items():
        for row in rows:
            seq = sft_sequence(row, tokenizer, append_eos=append_eos, max_length=max_length)
            if seq is None:
                empty[source] = empty.get(source, 0) + 1
                continue
            units.append((source, row, seq[1]))
            sequences.append(seq)
    scored = score_for_stage(model, tokenizer, sequences, batch_size=params.batch_size, stage="nll")
    out_rows = []
    for (source, row, n_prompt), s in zip(units, scored, strict=True):
        total = float(s.nll.sum())
        out_rows.append(
            {
                "row_id": f"{source}/{row['proposal_id']}",
                "source": source,
                "problem_id": row["problem_id"],
                "rollout_id": row["rollout_id"],
                "proposal_id": row["proposal_id"],
                "location": row["location"],
                "prompt_tokens": n_prompt,
                "n_tokens": s.n_tokens,
                "nll_sum": total,
                "nll_per_token": total / s.n_tokens,
            }
        )
    metrics = nll_metrics(
        out_rows, params.sources, skipped=skipped, resamples=params.bootstrap, seed=params.seed
    )
    summary: dict[str, Any] = {
        "rows": {s: m["rows"] for s, m in metrics.items() if "rows" in m},
        "nll_per_token": {
            s: round(m["nll_per_token"], 4)
            for s, m in metrics.items()
            if m.get("nll_per_token") is not None
        },
        "skipped": sorted(skipped),
    }
    if empty:
        summary["empty_completion"] = empty
    provenance = {
        "params": params.model_dump(mode="json"),
        "end_of_turn": end_of_turn,
        "append_eos": append_eos,
        "max_length": max_length,
        **model_provenance,
    }
    write_artifact(out_rows, out_path, "nll", provenance=provenance, summary=summary)
    write_json(metrics_path, metrics)
    return summary
