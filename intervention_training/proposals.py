"""Proposals: two-turn self-verification of each failed attempt by the model that wrote it.

Turn 1 (once per problem): the model works through the problem with the expert solution in view.
Turn 2 (``per_attempt`` samples per failed attempt): the model audits the attempt's numbered
steps, names the first critical error and writes one corrective step, ending with the
intervention block.

With ``constrained_block`` on, turn 2 runs in two phases: the model writes its audit freely until
it opens the block (or its audit budget runs out, and the opening tag is forced), then the block's
JSON is generated under a schema (content: non-empty string; location: integer from 1 to the
attempt's number of steps). The transformers backend does both phases in one pass; others
continue the free text in a second request (vLLM's prefix cache makes that cheap).
An attempt whose prompt would not fit the model's context is recorded as skipped, with the
token counts in the reason; nothing is silently truncated.

Which attempts are self-verified (:func:`select_failed_attempts`): those whose grade status is
in ``attempt_statuses``, on problems that the grades stage ``selected`` (all problems, or with
``grading.hard_only`` only those with no correct attempt).

Entry point of the ``proposals`` stage: :func:`write_proposals`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .artifacts import iter_artifact, read_metadata, write_artifact
from .config import ProposalsParams
from .generation import (
    GenerationBackend,
    GenerationRequest,
    derive_seed,
    render_chat,
    sampling_from,
)
from .progress import progress_bar
from .prompts import (
    BLOCK_CLOSE,
    BLOCK_OPEN,
    block_schema,
    reference_turn_messages,
    verification_messages,
)
from .readers import read_problems, read_rollouts
from .steps import number_steps, split_steps


def _fits(backend: GenerationBackend, prompt: str, budget: int) -> str | None:
    n = backend.count_tokens(prompt)
    if n + budget > backend.max_context:
        return f"prompt_too_long: {n} prompt + {budget} new tokens > context {backend.max_context}"
    return None


def _skipped(attempt: Mapping[str, Any], j: int, n_steps: int, reason: str, seed: int) -> dict:
    return {
        "proposal_id": f"{attempt['rollout_id']}/{j}",
        "rollout_id": attempt["rollout_id"],
        "problem_id": attempt["problem_id"],
        "sample_id": attempt["sample_id"],
        "proposal_index": j,
        "n_steps": n_steps,
        "status": "skipped",
        "skip_reason": reason,
        "reference_turn": None,
        "verification": None,
        "text": None,
        "n_tokens": 0,
        "finish_reason": None,
        "seed": seed,
        "constrained": False,
    }


def run_reference_turns(
    problems: Sequence[Mapping[str, Any]],
    backend: GenerationBackend,
    params: ProposalsParams,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, tuple[str | None, str | None]]:
    """Turn 1 for each problem: problem_id -> (the model's solution, or None; skip reason)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    requests, ids = [], []
    budget = params.reference_turn_max_new_tokens
    for p in problems:
        msgs = reference_turn_messages(p["problem"], p["reference_solution"], p["answer"])
        prompt = render_chat(backend.tokenizer, msgs)
        reason = _fits(backend, prompt, budget)
        if reason:
            out[p["problem_id"]] = (None, f"reference_turn_{reason}")
            continue
        seed = derive_seed(params.seed, "reference_turn", p["problem_id"])
        requests.append(GenerationRequest(prompt=prompt, seed=seed, max_new_tokens=budget))
        ids.append(p["problem_id"])
    results = backend.generate(requests, sampling_from(params.sampling), progress=progress)
    for pid, completions in zip(ids, results, strict=True):
        out[pid] = (completions[0].text, None)
    return out


def run_proposals(
    problems: Mapping[str, Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
    backend: GenerationBackend,
    params: ProposalsParams,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``proposals``: ``params.per_attempt`` per failed attempt, generated or skipped."""
    needed = sorted({a["problem_id"] for a in attempts})
    ref_turns = run_reference_turns([problems[pid] for pid in needed], backend, params)
    sampling = sampling_from(params.sampling)
    free_budget = params.verification_max_new_tokens
    if not params.constrained_block:
        free_budget += params.block_max_new_tokens
    # room for the audit, the opening tag (forced when the audit budget runs out) and the JSON
    total_budget = (
        params.verification_max_new_tokens
        + backend.count_tokens(BLOCK_OPEN)
        + params.block_max_new_tokens
    )
    # Backends that can switch to the schema mid-sample do both phases in one pass (the long
    # prompt is processed once); others get a second request that continues the free text.
    one_pass = params.constrained_block and getattr(backend, "supports_json_trigger", False)

    rows: list[dict[str, Any]] = []
    jobs: list[tuple[Mapping[str, Any], int, str, str, int]] = []
    requests: list[GenerationRequest] = []
    for a in attempts:
        steps = split_steps(a["completion"])
        n_steps = len(steps)
        base_seed = derive_seed(params.seed, "proposal", a["rollout_id"])
        ref_text, ref_reason = ref_turns[a["problem_id"]]
        reason = None
        if n_steps == 0:
            reason = "empty_attempt"
        elif ref_text is None:
            reason = ref_reason
        if reason is None:
            p = problems[a["problem_id"]]
            msgs = verification_messages(
                p["problem"],
                p["reference_solution"],
                p["answer"],
                ref_text,
                number_steps(steps),
                n_steps,
            )
            prompt = render_chat(backend.tokenizer, msgs)
            reason = _fits(backend, prompt, total_budget)
        if reason is not None:
            for j in range(params.per_attempt):
                rows.append(_skipped(a, j, n_steps, reason, derive_seed(base_seed, j)))
            continue
        if one_pass:
            request = GenerationRequest(
                prompt=prompt,
                n=params.per_attempt,
                seed=base_seed,
                max_new_tokens=free_budget,
                json_schema=block_schema(n_steps, params.block_content_max_chars),
                json_trigger=BLOCK_OPEN,
                json_max_new_tokens=params.block_max_new_tokens,
            )
        else:
            request = GenerationRequest(
                prompt=prompt,
                n=params.per_attempt,
                seed=base_seed,
                max_new_tokens=free_budget,
                stop=(BLOCK_OPEN,) if params.constrained_block else (),
            )
        requests.append(request)
        jobs.append((a, n_steps, prompt, ref_text, base_seed))

    free = backend.generate(requests, sampling, progress=progress)

    blocks: list[list[Any]] = [[None] * params.per_attempt for _ in jobs]
    if params.constrained_block and not one_pass:
        block_requests, where = [], []
        for k, ((_, n_steps, prompt, _, base_seed), completions) in enumerate(
            zip(jobs, free, strict=True)
        ):
            schema = block_schema(n_steps, params.block_content_max_chars)
            for j, c in enumerate(completions):
                block_requests.append(
                    GenerationRequest(
                        prompt=prompt + c.text + BLOCK_OPEN,
                        seed=derive_seed(base_seed, j, "block"),
                        max_new_tokens=params.block_max_new_tokens,
                        json_schema=schema,
                    )
                )
                where.append((k, j))
        for (k, j), out in zip(where, backend.generate(block_requests, sampling), strict=True):
            blocks[k][j] = out[0]

    for (a, n_steps, _, ref_text, base_seed), completions, blk in zip(
        jobs, free, blocks, strict=True
    ):
        for j, c in enumerate(completions):
            row = {
                "proposal_id": f"{a['rollout_id']}/{j}",
                "rollout_id": a["rollout_id"],
                "problem_id": a["problem_id"],
                "sample_id": a["sample_id"],
                "proposal_index": j,
                "n_steps": n_steps,
                "status": "generated",
                "skip_reason": None,
                "reference_turn": ref_text,
                "verification": c.text,
                "text": c.text,
                "n_tokens": c.n_tokens,
                "finish_reason": c.finish_reason,
                "seed": derive_seed(base_seed, j),
                "constrained": params.constrained_block,
            }
            if blk[j] is not None:
                b = blk[j]
                row["text"] = c.text + BLOCK_OPEN + b.text + BLOCK_CLOSE
                row["n_tokens"] = c.n_tokens + b.n_tokens
                row["finish_reason"] = b.finish_reason
            elif one_pass:
                cut = c.text.rfind(BLOCK_OPEN)
                row["verification"] = c.text[:cut] if cut >= 0 else c.text
                row["text"] = c.text + BLOCK_CLOSE
            rows.append(row)
    rows.sort(key=lambda r: (r["rollout_id"], r["proposal_index"]))
    return rows


def select_failed_attempts(
    grades_path: str | Path, pass_rates_path: str | Path, statuses: Collection[str]
) -> set[str]:
    """Rollout ids to self-verify: grade status in ``statuses``, problem ``selected`` in the
    pass rates (streamed; only the ids are held)."""
    selected = {
        r["problem_id"]
        for batch in iter_artifact(
            pass_rates_path, "pass_rates", columns=("problem_id", "selected")
        )
        for r in batch
        if r["selected"]
    }
    return {
        g["rollout_id"]
        for batch in iter_artifact(
            grades_path, "grades", columns=("rollout_id", "problem_id", "status")
        )
        for g in batch
        if g["status"] in statuses and g["problem_id"] in selected
    }


def write_proposals(
    problems_path: str | Path,
    rollouts_path: str | Path,
    grades_path: str | Path,
    pass_rates_path: str | Path,
    out_path: str | Path,
    params: ProposalsParams,
    backend: GenerationBackend,
) -> dict[str, Any]:
    """The ``proposals`` stage: self-verify the failed attempts; return the summary."""
    by_problem = {p["problem_id"]: p for p in read_problems(problems_path)}
    failed = select_failed_attempts(grades_path, pass_rates_path, params.attempt_statuses)
    attempts = list(read_rollouts(rollouts_path, failed).values())
    with progress_bar(len(attempts), "proposals") as tick:
        rows = run_proposals(by_problem, attempts, backend, params, progress=tick)
    summary = {
        "failed_attempts": len(attempts),
        "proposals": len(rows),
        "generated": sum(r["status"] == "generated" for r in rows),
        "skipped": sum(r["status"] == "skipped" for r in rows),
    }
    # Both models: the policy wrote the attempts (the rollouts' provenance), the backend's model
    # verified them (the policy itself unless proposals.model names a stronger proposer).
    policy = read_metadata(rollouts_path)["provenance"].get("backend", {}).get("model", "")
    provenance = {
        "backend": backend.describe(),
        "policy_model": policy,
        "proposer_model": backend.model_id,
        "params": params.model_dump(),
    }
    write_artifact(rows, out_path, "proposals", provenance=provenance, summary=summary)
    return summary
