"""The ``entropy@M`` stage: model M's next-token entropy on its own evaluation samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactError, read_artifact, read_metadata, write_json
from ..config import (
    DiagnosticsParams,
    EvaluationParams,
)
from ..generation.base import encode_prompt
from ..prompts import rollout_prompt
from ..readers import read_benchmarks, read_problems, selected_problem_ids
from .scoring import (
    choose_subset,
    load_scoring_model,
    ratio_interval,
    score_for_stage,
)

# --- entropy ---------------------------------------------------------------------------------

EVAL_COLUMNS = ("eval_id", "benchmark", "problem_id", "sample_id", "completion")


def entropy_metrics(
    samples: Sequence[Mapping[str, Any]],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``{benchmark: {samples, tokens, entropy_per_token, entropy_per_token_lo,
    entropy_per_token_hi}}`` from per-sample records (``benchmark``, ``problem_id``,
    ``entropy_sum``, ``n_tokens``), benchmarks in first-seen order. The mean is token-weighted;
    its interval a bootstrap over problems (each problem's samples resampled together)."""
    by_bench: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for s in samples:
        per_problem = by_bench.setdefault(s["benchmark"], {})
        acc = per_problem.setdefault(s["problem_id"], [0.0, 0.0])
        acc[0] += s["entropy_sum"]
        acc[1] += s["n_tokens"]
        counts[s["benchmark"]] = counts.get(s["benchmark"], 0) + 1
    out: dict[str, dict[str, Any]] = {}
    for bench, per_problem in by_bench.items():
        sums = [v[0] for v in per_problem.values()]
        tokens = [v[1] for v in per_problem.values()]
        total = int(sum(tokens))
        lo, hi = ratio_interval(sums, tokens, resamples=resamples, seed=seed)
        out[bench] = {
            "samples": counts[bench],
            "tokens": total,
            "entropy_per_token": sum(sums) / total if total else None,
            "entropy_per_token_lo": lo,
            "entropy_per_token_hi": hi,
        }
    return out


def eval_prompts(
    samples_path: str | Path,
    problems_path: str | Path,
    benchmarks_path: str | Path,
    evaluation: EvaluationParams,
    *,
    pass_rates_path: str | Path | None = None,
) -> dict[tuple[str, str], str]:
    """``(benchmark, problem_id) -> problem text`` of the configured benchmarks, read as the
    ``evaluate`` stage reads them. Raises :class:`~.artifacts.ArtifactError` naming
    ``samples_path`` when the samples were made with another ``answer_instruction``."""
    recorded = (read_metadata(samples_path)["provenance"].get("params") or {}).get(
        "answer_instruction"
    )
    if recorded is not None and recorded != evaluation.answer_instruction:
        raise ArtifactError(
            f"{samples_path}: sampled with evaluation.answer_instruction {recorded!r}, the params "
            f"say {evaluation.answer_instruction!r}; rerun the evaluate stage"
        )
    selected = selected_problem_ids(pass_rates_path) if pass_rates_path is not None else None
    needs_selected = any(
        b.source == "train" and b.subset == "selected" for b in evaluation.benchmarks
    )
    benchmarks = read_benchmarks(
        benchmarks_path,
        evaluation.benchmarks,
        read_problems(problems_path),
        selected if needs_selected else None,
    )
    return {(b.name, r["problem_id"]): r["problem"] for b in benchmarks for r in b.rows}


def write_entropy(
    samples_path: str | Path,
    model_dir: str | Path,
    problems_path: str | Path,
    benchmarks_path: str | Path,
    metrics_path: str | Path,
    params: DiagnosticsParams,
    evaluation: EvaluationParams,
    *,
    pass_rates_path: str | Path | None = None,
) -> dict[str, Any]:
    """The ``entropy`` stage for the model in ``model_dir`` and its evaluation samples
    (``eval_samples`` artifact at ``samples_path``): writes :func:`entropy_metrics` to
    ``metrics_path`` and returns the summary.

    At most ``params.max_samples`` samples per benchmark (a seeded choice of ``eval_id``: the
    same samples for every model). Samples with an empty completion count as samples with no
    tokens. Raises :class:`~.artifacts.ArtifactError` naming the file when the samples artifact
    is missing, malformed or empty, or a sample's problem is not among the configured
    benchmarks; nothing is written then.
    """
    samples = read_artifact(samples_path, "eval_samples", columns=EVAL_COLUMNS).to_pylist()
    if not samples:
        raise ArtifactError(
            f"{samples_path}: no evaluation samples to score; rerun the evaluate stage"
        )
    prompts = eval_prompts(
        samples_path,
        problems_path,
        benchmarks_path,
        evaluation,
        pass_rates_path=pass_rates_path,
    )
    for s in samples:
        if (s["benchmark"], s["problem_id"]) not in prompts:
            raise ArtifactError(
                f"{samples_path}: sample {s['eval_id']!r} is of a problem the configured "
                f"benchmarks do not hold ({s['benchmark']}/{s['problem_id']}); rerun evaluate"
            )
    chosen = []
    for bench in dict.fromkeys(s["benchmark"] for s in samples):
        mine = [s for s in samples if s["benchmark"] == bench]
        keep = choose_subset(
            [s["eval_id"] for s in mine], params.max_samples, params.seed, "entropy", bench
        )
        chosen.extend(s for s in mine if s["eval_id"] in keep)
    model, tokenizer, _ = load_scoring_model(model_dir, device=params.device, dtype=params.dtype)
    rendered: dict[tuple[str, str], list[int]] = {}
    records: list[dict[str, Any]] = []
    sequences: list[tuple[list[int], int]] = []
    scored_at: list[int] = []
    for s in chosen:
        key = (s["benchmark"], s["problem_id"])
        if key not in rendered:
            prompt = rollout_prompt(tokenizer, prompts[key], evaluation.answer_instruction)
            rendered[key] = encode_prompt(tokenizer, prompt)
        prompt_ids = rendered[key]
        completion_ids = encode_prompt(tokenizer, s["completion"])
        records.append({**s, "entropy_sum": 0.0, "n_tokens": 0})
        if completion_ids:
            scored_at.append(len(records) - 1)
            sequences.append((prompt_ids + completion_ids, len(prompt_ids)))
    scored = score_for_stage(
        model, tokenizer, sequences, batch_size=params.batch_size, stage="entropy"
    )
    for i, sc in zip(scored_at, scored, strict=True):
        records[i]["entropy_sum"] = float(sc.entropy.sum())
        records[i]["n_tokens"] = sc.n_tokens
    metrics = entropy_metrics(records, resamples=params.bootstrap, seed=params.seed)
    write_json(metrics_path, metrics)
    return {
        bench: {
            "samples": m["samples"],
            "tokens": m["tokens"],
            "entropy_per_token": (
                None if m["entropy_per_token"] is None else round(m["entropy_per_token"], 4)
            ),
        }
        for bench, m in metrics.items()
    }
