"""Rollouts: K attempts per training problem from the base model, one seed per (problem, sample).

Entry point of the ``rollouts`` stage: :func:`write_rollouts`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .artifacts import write_artifact
from .config import RolloutsParams
from .generation import GenerationBackend, GenerationRequest, derive_seed, sampling_from
from .progress import progress_bar
from .prompts import rollout_prompt
from .readers import read_problems


def run_rollouts(
    problems: Sequence[dict[str, Any]],
    backend: GenerationBackend,
    params: RolloutsParams,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Sample ``params.samples_per_problem`` attempts for each problem; rows of ``rollouts``."""
    requests = []
    for p in problems:
        prompt = rollout_prompt(backend.tokenizer, p["problem"], params.answer_instruction)
        seed = derive_seed(params.seed, "rollout", p["problem_id"])
        requests.append(GenerationRequest(prompt=prompt, n=params.samples_per_problem, seed=seed))
    outputs = backend.generate(requests, sampling_from(params.sampling), progress=progress)
    rows = []
    for p, req, completions in zip(problems, requests, outputs, strict=True):
        for j, c in enumerate(completions):
            rows.append(
                {
                    "rollout_id": f"{p['problem_id']}/{j}",
                    "problem_id": p["problem_id"],
                    "sample_id": j,
                    "prompt": req.prompt,
                    "completion": c.text,
                    "n_tokens": c.n_tokens,
                    "finish_reason": c.finish_reason,
                    "seed": derive_seed(req.seed, j),
                }
            )
    return rows


def write_rollouts(
    problems_path: str | Path,
    out_path: str | Path,
    params: RolloutsParams,
    backend: GenerationBackend,
) -> dict[str, Any]:
    """The ``rollouts`` stage: sample the train split of the problems artifact; return the
    summary (problems, attempts, length-limited attempts, generated tokens)."""
    train = read_problems(problems_path, split="train")
    with progress_bar(len(train), "rollouts") as tick:
        rows = run_rollouts(train, backend, params, progress=tick)
    summary = {
        "problems": len(train),
        "attempts": len(rows),
        "length_limited": sum(r["finish_reason"] == "length" for r in rows),
        "tokens": sum(r["n_tokens"] for r in rows),
    }
    provenance = {"backend": backend.describe(), "params": params.model_dump()}
    write_artifact(rows, out_path, "rollouts", provenance=provenance, summary=summary)
    return summary
