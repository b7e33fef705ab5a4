"""Arrow schemas of the evaluation artifacts, registered into :data:`schemas.SCHEMAS` at import.

``eval_samples`` (one row per sample): join key
``eval_id`` = ``{benchmark}/{problem_id}/{sample_id}``.
``status`` is math-verify's verdict (the grader's statuses); ``judge_verdict`` is the model judge's
(``equivalent``/``different``/``invalid``; null where the judge did not run); ``correct`` is the
final verdict the metrics use (math-verify's ``correct``, or the judge's ``equivalent``).
``answer_group`` numbers the distinct answers of one problem (equivalent answers share a number;
all correct samples share one); null for samples that do not vote (no finished boxed answer).

``contamination`` (one row per contaminated pair): a training problem and a benchmark problem
that share at least ``min_shared`` normalised word n-grams.
"""

from __future__ import annotations

import pyarrow as pa

from ..schemas import SCHEMAS

S = pa.string()
I32 = pa.int32()


def _f(name: str, typ: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, typ, nullable=nullable)


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
        _f("seed", pa.int64()),
        _f("status", S),  # correct | incorrect | no_answer | truncated | timeout | error
        _f("extracted", S, nullable=True),
        _f("detail", S, nullable=True),
        _f("judge_verdict", S, nullable=True),  # equivalent | different | invalid
        _f("correct", pa.bool_()),
        _f("answer_group", I32, nullable=True),
    ]
)

CONTAMINATION = pa.schema(
    [
        _f("benchmark", S),
        _f("benchmark_problem_id", S),
        _f("train_problem_id", S),
        _f("shared_ngrams", I32),
        _f("example", S),  # one shared n-gram, space-joined
    ]
)

SCHEMAS["eval_samples"] = EVAL_SAMPLES
SCHEMAS["contamination"] = CONTAMINATION
