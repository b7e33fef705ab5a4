"""The Arrow schema of every artifact the pipeline writes, in one place.

Join keys: ``problem_id`` (a problem), ``rollout_id`` = ``{problem_id}/{sample_id}`` (one attempt),
``proposal_id`` = ``{rollout_id}/{proposal_index}`` (one self-verification of an attempt), and
``continuation_id`` = ``{proposal_id}/{continuation_index}``.

A schema's version is bumped whenever its columns change; readers refuse an artifact whose
version differs, so that stale files never flow into newer code silently.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"


def _f(name: str, typ: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, typ, nullable=nullable)


S = pa.string()
I32 = pa.int32()
I64 = pa.int64()

PROBLEMS = pa.schema(
    [
        _f("problem_id", S),
        _f("problem", S),
        _f("answer", S),
        _f("reference_solution", S),
        _f("source", S),
        _f("split", S),  # "train" or "eval" (held out for evaluation)
    ]
)

ROLLOUTS = pa.schema(
    [
        _f("rollout_id", S),
        _f("problem_id", S),
        _f("sample_id", I32),
        _f("prompt", S),  # the exact rendered chat prompt the model continued
        _f("completion", S),
        _f("n_tokens", I32),
        _f("finish_reason", S),  # "stop" or "length"
        _f("seed", I64),
    ]
)

GRADES = pa.schema(
    [
        _f("rollout_id", S),
        _f("problem_id", S),
        _f("sample_id", I32),
        _f("status", S),  # correct | incorrect | no_answer | truncated | timeout | error
        _f("extracted", S, nullable=True),
        _f("detail", S, nullable=True),
        _f("correct", pa.bool_()),
    ]
)

PASS_RATES = pa.schema(
    [
        _f("problem_id", S),
        _f("n_samples", I32),
        _f("n_correct", I32),
        _f("pass_rate", pa.float64()),
        _f("selected", pa.bool_()),  # passed on to later stages (all, or only hard ones)
    ]
)

PROPOSALS = pa.schema(
    [
        _f("proposal_id", S),
        _f("rollout_id", S),
        _f("problem_id", S),
        _f("sample_id", I32),
        _f("proposal_index", I32),
        _f("n_steps", I32),
        _f("status", S),  # "generated" or "skipped"
        _f("skip_reason", S, nullable=True),
        _f("reference_turn", S, nullable=True),  # turn 1: the model's solution with the reference
        _f("verification", S, nullable=True),  # turn 2 free text before the block
        _f("text", S, nullable=True),  # full turn-2 output, block included
        _f("n_tokens", I32),
        _f("finish_reason", S, nullable=True),
        _f("seed", I64),
        _f("constrained", pa.bool_()),
    ]
)

INTERVENTIONS = pa.schema(
    [
        _f("proposal_id", S),
        _f("rollout_id", S),
        _f("problem_id", S),
        _f("sample_id", I32),
        _f("proposal_index", I32),
        _f("n_steps", I32),
        _f("parse_status", S),  # "ok", "skipped" or a parse failure reason
        _f("location", I32, nullable=True),  # 1-based step before which the fix is inserted
        _f("content", S, nullable=True),
        _f("repairs", pa.list_(S)),
        _f("leaked", pa.bool_(), nullable=True),
        _f("leak_evidence", S, nullable=True),
        _f("kept", pa.bool_()),
        _f("drop_reason", S, nullable=True),  # parse status, "leaked", "duplicate", ...
    ]
)

CONTINUATIONS = pa.schema(
    [
        _f("continuation_id", S),
        _f("proposal_id", S),
        _f("problem_id", S),
        _f("continuation_index", I32),
        _f("completion", S),
        _f("n_tokens", I32),
        _f("finish_reason", S),
        _f("status", S),
        _f("extracted", S, nullable=True),
        _f("correct", pa.bool_()),
        _f("seed", I64),
    ]
)

SELECTED = pa.schema(
    [
        _f("proposal_id", S),
        _f("rollout_id", S),
        _f("problem_id", S),
        _f("n_continuations", I32),
        _f("n_correct", I32),
        _f("selected", pa.bool_()),
    ]
)

SFT = pa.schema(
    [
        _f("prompt", S),  # rendered chat prompt, identical to the rollout's prompt
        _f("completion", S),  # steps 1..location-1 of the attempt + the intervention
        _f("problem_id", S),
        _f("rollout_id", S),
        _f("proposal_id", S),
        _f("location", I32),
        _f("prefix", S),
        _f("intervention", S),
        _f("end_of_turn", pa.bool_()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "problems": PROBLEMS,
    "rollouts": ROLLOUTS,
    "grades": GRADES,
    "pass_rates": PASS_RATES,
    "proposals": PROPOSALS,
    "interventions": INTERVENTIONS,
    "continuations": CONTINUATIONS,
    "selected": SELECTED,
    "sft": SFT,
}
