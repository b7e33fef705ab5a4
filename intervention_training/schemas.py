"""The Arrow schema of every artifact the pipeline writes, in one place.

Join keys: ``problem_id`` (a problem), ``rollout_id`` = ``{problem_id}/{sample_id}`` (one attempt),
``proposal_id`` = ``{rollout_id}/{proposal_index}`` (one self-verification of an attempt),
``continuation_id`` = ``{proposal_id}/{continuation_index}``, ``item_id`` =
``{benchmark}/{problem_id}`` (one benchmark problem) and ``eval_id`` = ``{item_id}/{sample_id}``
(one evaluation sample). :data:`KEYS` names the column that identifies a row of each artifact.

Every artifact is declared here and only here (:data:`SCHEMAS`, a literal table): nothing is
registered by importing another module, so ``read_artifact`` and ``int show`` know every
artifact from a fresh interpreter.

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

#: Table 1 of the paper: continuations of the hard problems' failed attempts, one row per
#: continuation, by source (``problem_only``, ``prefix_resample``, ``prefix_with_error``,
#: ``prefix_intervention``, ``stronger_proposer``). ``proposal_id`` names the kept intervention
#: whose budget the row was sampled under, for every source (``problem_only`` rows too: the same
#: number of fresh attempts per intervention as every other source gets).
CONTINUATION_SOURCES = pa.schema(
    [
        _f("continuation_id", S),  # {source}/{proposal_id}/{continuation_index}
        _f("source", S),
        _f("problem_id", S),
        _f("rollout_id", S),
        _f("proposal_id", S),
        _f("continuation_index", I32),
        _f("prefix", S),  # the assistant text given before the continuation ("" problem_only)
        _f("continuation", S),
        _f("n_tokens", I32),
        _f("finish_reason", S),
        _f("status", S),  # the grader's status of prefix + continuation
        _f("extracted", S, nullable=True),
        _f("correct", pa.bool_()),
        _f("seed", I64),
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

#: Benchmark problems as the ``benchmarks`` stage loaded them (every configured benchmark
#: except ``heldout``, which is the problems artifact's own eval split).
BENCHMARKS = pa.schema(
    [
        _f("item_id", S),  # {benchmark}/{problem_id}
        _f("benchmark", S),
        _f("problem_id", S),
        _f("problem", S),
        _f("answer", S),
    ]
)

#: One graded evaluation sample. ``status`` is math-verify's verdict (the grader's statuses);
#: ``judge_verdict`` is the model judge's (``equivalent``/``different``/``invalid``; null where the
#: judge did not run); ``correct`` is the final verdict the metrics use (math-verify's
#: ``correct``, or the judge's ``equivalent``). ``answer_group`` numbers the distinct answers of
#: one problem (equivalent answers share a number; all correct samples share one); null for
#: samples that do not vote (no finished boxed answer).
EVAL_SAMPLES = pa.schema(
    [
        _f("eval_id", S),
        _f("model", S),  # the evaluated model's label (base, sft, rl, ...)
        _f("benchmark", S),
        _f("problem_id", S),
        _f("sample_id", I32),
        _f("reference", S),
        _f("reference_gradable", pa.bool_()),  # reference_problem(reference) is None
        _f("completion", S),
        _f("n_tokens", I32),
        _f("finish_reason", S),  # "stop" or "length"
        _f("seed", I64),
        _f("status", S),  # correct | incorrect | no_answer | truncated | timeout | error
        _f("extracted", S, nullable=True),
        _f("detail", S, nullable=True),
        _f("judge_verdict", S, nullable=True),  # equivalent | different | invalid
        _f("correct", pa.bool_()),
        _f("answer_group", I32, nullable=True),
    ]
)

#: One contaminated pair: a training problem and a benchmark problem that share at least
#: ``min_shared`` normalised word n-grams.
CONTAMINATION = pa.schema(
    [
        _f("benchmark", S),
        _f("benchmark_problem_id", S),
        _f("train_problem_id", S),
        _f("shared_ngrams", I32),
        _f("example", S),  # one shared n-gram, space-joined
    ]
)

#: The locator scored on CHAMP's human-annotated solutions (``locate_eval`` stage): one row per
#: annotated model solution, its annotation placed on our steps, the proposer's prediction.
LOCATE_EVAL = pa.schema(
    [
        _f("item_id", S),  # "<problem_id>|<model>|<prompt setting>"
        _f("problem_id", S),
        _f("problem", S),
        _f("reference_solution", S),
        _f("answer", S),
        _f("solution", S),  # the model's solution, as annotated
        _f("author", S),  # the model that wrote it
        _f("prompt_setting", S),
        _f("span_start", I32),
        _f("span_end", I32),
        _f("span_text", S),
        _f("n_steps", I32),
        _f("annotated_step", I32),  # the step holding the span's first character
        _f("end_step", I32),  # the step holding its last
        _f("span_in_one_step", pa.bool_()),
        _f("relative_position", pa.float64()),
        _f("predicted", I32, nullable=True),  # the proposer's location; null: none parsed
        _f("parse_status", S),
        _f("proposal", S, nullable=True),
        _f("outcome", S),  # exact | too_early | too_late | no_parse
        _f("within_one", pa.bool_()),
    ]
)

#: The on-policy diagnostic (``nll`` stage): one row per (source, SFT row), the per-token
#: negative log-likelihood (nats) of the row's completion tokens under the base model. ``source``
#: is an ``sft_data.variant`` of the interventions (``prefix_intervention`` = InT,
#: ``intervention_only``, ``prefix_intervention_suffix``) or ``reference``; the other ids are
#: the SFT row's own (``proposal_id`` is ``reference/<problem_id>`` for reference rows).
NLL = pa.schema(
    [
        _f("row_id", S),  # {source}/{proposal_id}
        _f("source", S),
        _f("problem_id", S),
        _f("rollout_id", S),  # "" for reference rows
        _f("proposal_id", S),
        _f("location", I32),
        _f("prompt_tokens", I32),
        _f("n_tokens", I32),  # completion tokens scored: the ones SFT puts in the loss
        _f("nll_sum", pa.float64()),
        _f("nll_per_token", pa.float64()),
    ]
)

#: Every artifact's schema, in pipeline order.
SCHEMAS: dict[str, pa.Schema] = {
    "problems": PROBLEMS,
    "benchmarks": BENCHMARKS,
    "rollouts": ROLLOUTS,
    "grades": GRADES,
    "pass_rates": PASS_RATES,
    "proposals": PROPOSALS,
    "interventions": INTERVENTIONS,
    "continuations": CONTINUATIONS,
    "selected": SELECTED,
    "continuation_sources": CONTINUATION_SOURCES,
    "sft": SFT,
    "eval_samples": EVAL_SAMPLES,
    "contamination": CONTAMINATION,
    "locate_eval": LOCATE_EVAL,
    "nll": NLL,
}

#: The column that identifies a row of each artifact (what ``int show`` filters and joins on).
#: A contamination row is a pair; it is looked up by its training problem.
KEYS: dict[str, str] = {
    "problems": "problem_id",
    "benchmarks": "item_id",
    "rollouts": "rollout_id",
    "grades": "rollout_id",
    "pass_rates": "problem_id",
    "proposals": "proposal_id",
    "interventions": "proposal_id",
    "continuations": "continuation_id",
    "selected": "proposal_id",
    "continuation_sources": "continuation_id",
    "sft": "proposal_id",
    "eval_samples": "eval_id",
    "contamination": "train_problem_id",
    "locate_eval": "item_id",
    "nll": "row_id",
}
