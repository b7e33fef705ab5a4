"""Rollouts: K attempts per training problem from the base model, one seed per (problem, sample)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from .artifacts import select_rows
from .config import RolloutsParams
from .generation import GenerationBackend, GenerationRequest, derive_seed, render_chat
from .prompts import rollout_messages
from .runtime import sampling_params


def rollout_prompt(tokenizer: Any, problem: str, answer_instruction: str = "") -> str:
    """The exact prompt text a rollout continues (the model's own chat template)."""
    return render_chat(tokenizer, rollout_messages(problem, answer_instruction))


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
    outputs = backend.generate(requests, sampling_params(params.sampling), progress=progress)
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


def read_rollouts(
    path: str | Path, rollout_ids: Collection[str], *, columns: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The rollouts whose id is in ``rollout_ids``, by id, in file order (streamed: no other row
    is held in memory). ``columns`` limits the fields read (``rollout_id`` is always read)."""
    rows = select_rows(path, "rollouts", "rollout_id", rollout_ids, columns=columns)
    return {r["rollout_id"]: r for r in rows}
