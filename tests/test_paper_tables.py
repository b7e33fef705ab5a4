"""The paper's Table 1 and Table 2 as DVC runs with the tiny random model (slow tier).

Table 1: the continuation_sources stage writes one artifact with a `source` column and one
metrics row per source. Table 2: an SFT data variant trains and is evaluated on the training
problems (an evaluation benchmark with `source: train`). The arithmetic and the rows' tokens are
tested in test_continuation_sources.py and test_sft_data.py; here, that the commands a user runs
produce every row.
"""

from __future__ import annotations

import json
import sys

import pytest

pytestmark = pytest.mark.slow


def test_table_1_continuation_sources_stage(tmp_path):
    from workspace import make_workspace, run

    from intervention_training.artifacts import read_artifact

    def tweak(params: dict) -> None:
        params["grading"]["hard_only"] = True

    ws = make_workspace(tmp_path / "ws", tweak)
    run([sys.executable, "-m", "dvc", "repro", "continuation_sources"], ws)
    rows = read_artifact(ws / "data/continuation_sources.parquet", "continuation_sources")
    rows = rows.to_pylist()
    metrics = json.loads((ws / "metrics/continuation_sources.json").read_text())
    kept = [
        r
        for r in read_artifact(ws / "data/interventions.parquet", "interventions").to_pylist()
        if r["kept"]
    ]
    sources = ("problem_only", "prefix_resample", "prefix_with_error", "prefix_intervention")
    assert kept, "the tiny model's run kept no intervention: nothing to continue"
    assert {r["source"] for r in rows} == set(sources)
    for source in sources:
        assert metrics[source]["continuations"] == sum(r["source"] == source for r in rows) > 0
    assert "skipped" in metrics["stronger_proposer"]  # no separate proposer configured
    shown = run([sys.executable, "-m", "dvc", "metrics", "show"], ws)
    assert "continuation_sources.json" in shown


def test_table_2_variant_trained_and_measured_on_the_training_problems(tmp_path):
    from workspace import make_workspace, run

    from intervention_training.artifacts import read_artifact

    def tweak(params: dict) -> None:
        params["sft_data"]["variant"] = "intervention_only"
        params["evaluation"]["benchmarks"].append({"name": "train", "source": "train"})

    ws = make_workspace(tmp_path / "ws", tweak)
    run([sys.executable, "-m", "dvc", "repro", "eval_metrics@sft"], ws)
    sft = read_artifact(ws / "data/sft.parquet", "sft").to_pylist()
    assert sft and all(r["prefix"] == "" and r["completion"] == r["intervention"] for r in sft)
    problems = read_artifact(ws / "data/problems.parquet", "problems").to_pylist()
    train_ids = {p["problem_id"] for p in problems if p["split"] == "train"}
    samples = read_artifact(ws / "data/eval/sft.parquet", "eval_samples").to_pylist()
    assert {s["problem_id"] for s in samples if s["benchmark"] == "train"} == train_ids
    metrics = json.loads((ws / "metrics/eval_sft.json").read_text())
    assert "train" in json.dumps(metrics)
