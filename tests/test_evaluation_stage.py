"""The evaluate / eval_metrics / contamination stages: scripted backend, judge, tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from fakes import ScriptedBackend

from intervention_training.artifacts import read_artifact, read_metadata, write_artifact
from intervention_training.backends import open_backend
from intervention_training.config import EvaluationParams, JudgeParams, SamplingSection
from intervention_training.evaluation.benchmarks import write_benchmarks
from intervention_training.evaluation.contamination import write_contamination
from intervention_training.evaluation.evaluate import (
    answer_groups,
    evaluate_model,
    write_eval_samples,
)
from intervention_training.evaluation.judge import JUDGE_SCHEMA, parse_verdict
from intervention_training.evaluation.metrics import evaluation_metrics, write_eval_metrics
from intervention_training.generation import derive_seed
from intervention_training.readers import Benchmark
from intervention_training.runtime import load_stage_params

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

PROBLEMS = [
    {"problem_id": "p1", "problem": "Compute 6 * 7.", "answer": "42"},
    {"problem_id": "p2", "problem": "Compute 1/2 + 1/2.", "answer": "1"},
    {
        "problem_id": "p3",
        "problem": "Which integers are divisible by 2?",
        "answer": "all even integers",
    },
]
SCRIPT = {
    "Compute 6 * 7.": ["So \\boxed{42}.", "\\boxed{41}", "no idea", "\\boxed{ 41 }"],
    "Compute 1/2 + 1/2.": ["\\boxed{2/2}", "\\boxed{1.0}", "\\boxed{0.5}", "\\boxed{\\frac{1}{2}}"],
    "Which integers are divisible by 2?": ["\\boxed{the even ones}", "\\boxed{odd}"] * 2,
}


def script(request, j):
    if request.json_schema is not None:  # the judge
        return json.dumps({"equivalent": "even ones" in request.prompt})
    problem = next(p for p in SCRIPT if p in request.prompt)
    return SCRIPT[problem][j]


def params(**judge) -> EvaluationParams:
    return EvaluationParams(samples_per_problem=4, ks=(1, 2, 4), judge=JudgeParams(**judge))


def test_evaluate_model_rows_groups_and_exclusion(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, script)
    bench = Benchmark("toy", [dict(p) for p in PROBLEMS], "generic", n_read=3)
    rows, summary = evaluate_model([bench], backend, params(), model="base", workers=1)
    # the prose reference is excluded (judge off), and counted
    assert summary["toy"]["excluded_ungradable"] == 1 and summary["toy"]["evaluated"] == 2
    assert summary["toy"]["ungradable_reasons"] == {"prose": 1}
    assert [r["eval_id"] for r in rows[:2]] == ["toy/p1/0", "toy/p1/1"]
    (requests,) = backend.calls
    assert requests[0].n == 4 and requests[0].seed == derive_seed(0, "eval", "toy", "p1")
    p1 = [r for r in rows if r["problem_id"] == "p1"]
    assert [r["status"] for r in p1] == ["correct", "incorrect", "no_answer", "incorrect"]
    # "41" and " 41 " are one answer; the no-answer sample does not vote
    assert [r["answer_group"] for r in p1] == [0, 1, None, 1]
    p2 = [r for r in rows if r["problem_id"] == "p2"]
    assert [r["correct"] for r in p2] == [True, True, False, False]
    # 0.5 and \frac{1}{2} are equivalent by math-verify: one wrong group
    assert [r["answer_group"] for r in p2] == [0, 0, 1, 1]
    assert all(r["judge_verdict"] is None for r in rows)

    metrics, curves = evaluation_metrics(rows, summary, [1, 2, 4], resamples=100)
    toy = metrics["toy"]
    assert toy["pass@1"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    # p1 blocks of 2: [42, 41] tie -> 42 (first) right; [none, 41] -> wrong. p2: right, wrong
    assert toy["maj@2"] == pytest.approx(0.5)
    # maj@4: p1 41 wins 2:1; p2 tie 2:2 -> the correct group came first
    assert toy["maj@4"] == pytest.approx(0.5)
    assert toy["no_answer_rate"] == pytest.approx(1 / 8)
    assert toy["excluded_ungradable"] == 1
    assert [c["k"] for c in curves["toy"]] == [1, 2, 4]


def test_judge_decides_only_what_math_verify_cannot(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, script)
    bench = Benchmark("toy", [dict(p) for p in PROBLEMS], "generic", n_read=3)
    opened = []

    def judge_backend():
        opened.append(True)
        return backend

    rows, summary = evaluate_model(
        [bench], backend, params(enabled=True), model="base", workers=1, judge_backend=judge_backend
    )
    assert summary["toy"]["excluded_ungradable"] == 0 and summary["toy"]["evaluated"] == 3
    assert opened == [True]
    judge_calls = backend.calls[1]
    # one request per distinct (problem, answer): "the even ones" and "odd"
    assert len(judge_calls) == 2 and all(r.json_schema == JUDGE_SCHEMA for r in judge_calls)
    assert "all even integers" in judge_calls[0].prompt
    p3 = [r for r in rows if r["problem_id"] == "p3"]
    assert [r["status"] for r in p3] == ["incorrect"] * 4  # math-verify's verdict is kept
    assert [r["judge_verdict"] for r in p3] == ["equivalent", "different"] * 2
    assert [r["correct"] for r in p3] == [True, False] * 2
    assert all(r["judge_verdict"] is None for r in rows if r["problem_id"] != "p3")
    metrics, _ = evaluation_metrics(rows, summary, [1], resamples=50)
    judge = metrics["toy"]["judge"]
    assert judge["judged"] == 4 and judge["equivalent"] == 2 and judge["different"] == 2
    assert judge["pass@1_math_verify"] < metrics["toy"]["pass@1"]


def test_parse_verdict():
    assert parse_verdict('{"equivalent": true}') == "equivalent"
    assert parse_verdict(' {"equivalent": false} ') == "different"
    assert parse_verdict('Thinking... "equivalent": false ... {"equivalent": TRUE}') == "equivalent"
    assert parse_verdict("yes") == "invalid"
    assert parse_verdict('{"equivalent": "yes"}') == "invalid"


def test_answer_groups_without_votes_and_all_correct():
    groups = answer_groups([[(None, False), ("3", True), ("3", True)], []], workers=1)
    assert groups == [[None, 0, 0], []]


def test_stages_with_the_tiny_model(tmp_path, tiny_model_dir):
    problems = [
        {**p, "reference_solution": "r", "source": "t", "split": split}
        for p, split in zip(
            PROBLEMS[:2] + [{"problem_id": "p4", "problem": "Compute 6 * 7.", "answer": "42"}],
            ["eval", "eval", "train"],
            strict=True,
        )
    ]
    write_artifact(problems, tmp_path / "problems.parquet", "problems")
    cfg = {
        "backend": {"name": "transformers", "device": "cpu", "batch_size": 4},
        "grading": {"timeout_s": 5.0, "workers": 1},
        "evaluation": {
            "benchmarks": [{"name": "heldout", "source": "heldout"}],
            "samples_per_problem": 2,
            "sampling": SamplingSection(max_new_tokens=6).model_dump(),
            "ks": [1, 2],
            "bootstrap": {"resamples": 50},
        },
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(cfg))
    evaluation, backend_cfg, grading = load_stage_params(params, "evaluation", "backend", "grading")
    benchmarks = tmp_path / "benchmarks.parquet"
    assert write_benchmarks(benchmarks, evaluation.benchmarks) == {}  # held-out only
    samples = tmp_path / "eval" / "tiny.parquet"
    with open_backend(tiny_model_dir, backend_cfg, tmp_path / "work") as backend:
        write_eval_samples(
            "tiny",
            tiny_model_dir,
            tmp_path / "problems.parquet",
            benchmarks,
            samples,
            evaluation,
            grading,
            backend,
            judge_model_dir=tiny_model_dir,
            backend_params=backend_cfg,
        )
    assert not (tmp_path / "work").exists()  # finished shards are released after the write
    rows = read_artifact(samples, "eval_samples").to_pylist()
    assert len(rows) == 4 and {r["model"] for r in rows} == {"tiny"}
    assert read_metadata(samples)["provenance"]["model"] == "tiny"

    metrics, plots = tmp_path / "metrics" / "eval_tiny.json", tmp_path / "metrics" / "curves"
    write_eval_metrics(samples, metrics, plots, evaluation)
    heldout = json.loads(metrics.read_text())["heldout"]
    for key in (
        "pass@1",
        "pass@2",
        "maj@1",
        "maj@2",
        "pass@1_lo",
        "pass@1_hi",
        "coverage",
        "coverage_lo",
        "coverage_hi",
        "coverage_share",
        "accuracy",
        "accuracy_lo",
        "accuracy_hi",
        "no_answer_rate",
        "truncation_rate",
        "mean_tokens",
        "excluded_ungradable",
        "problems",
        "samples",
    ):
        assert key in heldout, key
    assert "status" not in heldout and "judge" not in heldout  # judge off: no judge columns
    assert heldout["problems"] == 2 and heldout["samples"] == 4
    assert heldout["pass@1_lo"] <= heldout["pass@1"] <= heldout["pass@1_hi"]
    details = json.loads((tmp_path / "metrics" / "eval_tiny.details.json").read_text())
    assert sum(details["heldout"]["status"].values()) == 4
    assert details["heldout"]["judge"]["judged"] == 0
    curve = json.loads((plots / "heldout.json").read_text())
    assert [c["k"] for c in curve] == [1, 2]

    write_contamination(
        tmp_path / "problems.parquet",
        benchmarks,
        tmp_path / "contamination.parquet",
        tmp_path / "metrics" / "contamination.json",
        evaluation,
    )
    pairs = read_artifact(tmp_path / "contamination.parquet", "contamination").to_pylist()
    # the training problem p4 repeats the held-out p1 word for word
    assert [(p["train_problem_id"], p["benchmark_problem_id"]) for p in pairs] == [("p4", "p1")]
    counts = json.loads((tmp_path / "metrics" / "contamination.json").read_text())
    assert counts["heldout"]["contaminated_benchmark_problems"] == 1


def test_judge_schema_runs_on_the_transformers_backend(tiny_model_dir):
    from intervention_training.backends import make_backend
    from intervention_training.evaluation.judge import VERDICTS, JudgeItem, run_judge

    backend = make_backend("transformers", str(tiny_model_dir), device="cpu", batch_size=2)
    items = [JudgeItem("b/p", "Compute 6 * 7.", "42", c) for c in ("42", "41", "42")]
    verdicts = run_judge(items, backend, JudgeParams(max_new_tokens=24))
    assert len(verdicts) == 3 and set(verdicts) <= set(VERDICTS) - {"invalid"}  # schema holds
    assert verdicts[0] == verdicts[2]  # the same question is asked once
